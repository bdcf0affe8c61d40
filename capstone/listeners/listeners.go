// Package listeners binds the broker's network listeners and turns each
// accepted connection, whatever its transport, into a net.Conn for the
// engine: plain TCP, TLS (chapter 3's lab 7, auth.ServerTLS) and MQTT over
// WebSocket (chapter 3's lab 6, floodgate/ch03-networking/06-websocket).
package listeners

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"floodgate/capstone/engine"
	websocket "floodgate/ch03-networking/06-websocket"
	auth "floodgate/ch03-networking/07-auth"
)

// Defaults: everything on loopback.
const (
	DefaultTCP = "127.0.0.1:1883"
	DefaultWS  = "127.0.0.1:8083"
	// Off disables a listener.
	Off = "off"
)

// ErrBadConfig is wrapped by Open for an invalid Config.
var ErrBadConfig = errors.New("listeners: bad config")

// Config names the addresses to listen on. The zero value listens on
// DefaultTCP and DefaultWS, and not on TLS.
type Config struct {
	TCP string // default DefaultTCP; Off disables
	WS  string // MQTT over WebSocket at /mqtt; default DefaultWS; Off disables
	TLS string // MQTT over TLS; default none (set it and TLSOptions)
	// TLSOptions names the certificate, key and optional client CA files.
	TLSOptions auth.TLSOptions
	Logger     *slog.Logger // default: discard
}

// Set is the bound listeners. Make it with Open; Serve closes them.
type Set struct {
	tcp, tls, ws net.Listener // nil when off
	log          *slog.Logger
}

// Open binds every configured listener, or none: on any error it closes
// those already bound and returns an error that names the listener.
func Open(cfg Config) (*Set, error) {
	if cfg.TCP == "" {
		cfg.TCP = DefaultTCP
	}
	if cfg.WS == "" {
		cfg.WS = DefaultWS
	}
	s := &Set{log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	fail := func(err error) (*Set, error) {
		s.close()
		return nil, err
	}
	var err error
	if cfg.TCP != Off {
		if s.tcp, err = net.Listen("tcp", cfg.TCP); err != nil {
			return fail(fmt.Errorf("listeners: MQTT on TCP %s: %w", cfg.TCP, err))
		}
	}
	if cfg.WS != Off {
		if s.ws, err = net.Listen("tcp", cfg.WS); err != nil {
			return fail(fmt.Errorf("listeners: MQTT over WebSocket %s: %w", cfg.WS, err))
		}
	}
	if cfg.TLS != "" && cfg.TLS != Off {
		tc, err := auth.ServerTLS(cfg.TLSOptions)
		if err != nil {
			return fail(fmt.Errorf("listeners: MQTT over TLS %s: %w: %w", cfg.TLS, ErrBadConfig, err))
		}
		ln, err := net.Listen("tcp", cfg.TLS)
		if err != nil {
			return fail(fmt.Errorf("listeners: MQTT over TLS %s: %w", cfg.TLS, err))
		}
		s.tls = tls.NewListener(ln, tc)
	}
	return s, nil
}

func (s *Set) close() {
	for _, ln := range []net.Listener{s.tcp, s.tls, s.ws} {
		if ln != nil {
			ln.Close()
		}
	}
}

// Addrs returns the bound addresses by kind ("tcp", "tls", "ws").
func (s *Set) Addrs() map[string]net.Addr {
	out := make(map[string]net.Addr)
	for k, ln := range map[string]net.Listener{"tcp": s.tcp, "tls": s.tls, "ws": s.ws} {
		if ln != nil {
			out[k] = ln.Addr()
		}
	}
	return out
}

// Serve serves every listener with h until ctx is done (or one fails, which
// stops the others), then waits for every connection's handler to return.
// It returns the first error, or nil after ctx ended.
func (s *Set) Serve(ctx context.Context, h engine.Handler) error {
	return s.ServeWith(ctx, h, nil)
}

// ServeWith is Serve with the plain TCP listener served by tcp instead, if
// tcp is not nil (the broker's epoll engine); tcp must close it and return
// once ctx is done.
func (s *Set) ServeWith(ctx context.Context, h engine.Handler, tcp func(context.Context, net.Listener) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	run := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	if s.tcp != nil && tcp != nil {
		run(func() error { return tcp(ctx, s.tcp) })
	}
	for _, ln := range []net.Listener{s.tcp, s.tls} {
		if ln != nil && (ln != s.tcp || tcp == nil) {
			run(func() error { return engine.Serve(ctx, ln, h) })
		}
	}
	if s.ws != nil {
		wh, err := websocket.New(websocket.Config{Logger: s.log}, func(nc net.Conn) { h(ctx, nc) })
		if err != nil {
			s.close()
			cancel()
			wg.Wait()
			return fmt.Errorf("listeners: websocket: %w", err)
		}
		run(func() error { return wh.Serve(ctx, s.ws) })
	}
	wg.Wait()
	close(errs)
	return <-errs
}
