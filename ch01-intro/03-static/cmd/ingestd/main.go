// Command ingestd runs lab 01's ingestion server.
//
//	go run -tags floodgate.solution ./ch01-intro/03-static/cmd/ingestd -addr 127.0.0.1:7000
//
// Without the tag it runs your own lab 01. It prints "listening on ADDR" once
// it accepts connections, and stops cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	ingest "floodgate/ch01-intro/01-ingest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7000", "address to listen on")
	maxLine := flag.Int("max-line", 256, "longest line accepted, in bytes")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*addr, *maxLine, log); err != nil {
		log.Error("ingestd", "err", err)
		os.Exit(1)
	}
}

func run(addr string, maxLine int, log *slog.Logger) error {
	srv, err := ingest.New(ingest.Config{MaxLineBytes: maxLine, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	fmt.Printf("listening on %s\n", ln.Addr())

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if serr := <-serveErr; !errors.Is(serr, ingest.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	st := srv.Stats()
	fmt.Printf("stopped: %d connections, %d readings, %d malformed\n", st.Accepted, st.Readings, st.Malformed)
	return err
}
