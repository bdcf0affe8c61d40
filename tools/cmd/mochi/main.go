// Command mochi runs the mochi-mqtt broker (github.com/mochi-mqtt/server/v2)
// on one loopback TCP address, with default options and no authentication
// (the allow-all auth hook), so that `make bench` can compare Floodgate with
// it. It refuses an address outside 127.0.0.0/8, prints "listening ADDR" on
// stderr once it accepts connections, and stops on SIGINT or SIGTERM.
//
//	go run floodgate/tools/cmd/mochi -addr 127.0.0.1:1884
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"floodgate/tools/internal/load"
	"floodgate/tools/internal/mochibroker"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1884", "TCP address to listen on (127.0.0.0/8 only)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr); err != nil {
		fmt.Fprintln(os.Stderr, "mochi:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done.
func run(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := load.ParseTarget(net.JoinHostPort(host, "1")); err != nil { // any port, 0 too
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv, err := mochibroker.Start(ln, nil)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "listening", ln.Addr())
	<-ctx.Done()
	return srv.Close()
}
