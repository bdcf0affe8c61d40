// Command edged is the chapter's edge ingestion binary: a line-protocol TCP
// server (see floodgate/ch05-edge/01-cross.Server) small enough for a
// gateway. It prints one readiness line to stdout once it listens:
//
//	edged ready addr=127.0.0.1:40123 arch=linux/arm64
//
// and logs to stderr. SIGINT or SIGTERM stops it gracefully.
//
// Usage:
//
//	edged [-addr 127.0.0.1:0]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	cross "floodgate/ch05-edge/01-cross"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address; port 0 picks a free port")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("listen", "err", err)
		os.Exit(1)
	}
	fmt.Printf("%saddr=%s arch=%s/%s\n", cross.ReadyPrefix, ln.Addr(), runtime.GOOS, runtime.GOARCH)

	var s cross.Server
	if err := s.Serve(ctx, ln); err != nil {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
	log.Info("stopped")
}
