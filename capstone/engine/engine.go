// Package engine is the Floodgate broker's connection engine. This one is
// the portable baseline: one goroutine per connection over net.Conn, the
// model of chapter 2 and of chapter 3's small broker (05-broker). An epoll
// engine (chapter 3's 02-epoll) with the same contract comes later.
package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Handler serves one connection in the goroutine the engine gives it. It
// must return once ctx is done and the connection's reads fail, and it owns
// closing nc.
type Handler func(ctx context.Context, nc net.Conn)

// Serve accepts connections on ln and runs h for each in its own goroutine,
// until ctx is done or Accept fails for good. It then closes ln, cancels the
// handlers' context, waits for every handler to return, and returns nil
// (ctx done) or the Accept error. Temporary Accept errors (EMFILE, for
// example) are retried with a backoff of 5 ms doubling to 1 s, so a
// descriptor shortage slows the broker down instead of ending it.
func Serve(ctx context.Context, ln net.Listener, h Handler) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && !errors.Is(err, net.ErrClosed) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				t := time.NewTimer(backoff)
				select {
				case <-ctx.Done():
					t.Stop()
					return nil
				case <-t.C:
				}
				continue
			}
			ln.Close()
			return fmt.Errorf("engine: accept on %s: %w", ln.Addr(), err)
		}
		backoff = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			h(ctx, nc)
		}()
	}
}
