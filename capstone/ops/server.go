package ops

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed static
var static embed.FS

// Errors of the server.
var (
	// ErrPprofNotLoopback is returned when /debug/pprof is enabled on an
	// address that is not a loopback one: profiles and the goroutine dump
	// show what the broker holds, so they stay on the machine.
	ErrPprofNotLoopback = errors.New("ops: /debug/pprof is only served on a loopback address (127.0.0.0/8, ::1 or localhost)")
	// ErrInvalidConfig is returned, wrapped, by NewServer.
	ErrInvalidConfig = errors.New("ops: invalid config")
)

// DefaultAddr is where the server listens by default.
const DefaultAddr = "127.0.0.1:8080"

// ServerConfig configures NewServer. Its zero value works.
type ServerConfig struct {
	// Addr is the listen address. Default DefaultAddr (loopback).
	Addr string
	// Pprof serves /debug/pprof. Default false. Allowed only when Addr is
	// a loopback address; NewServer refuses otherwise.
	Pprof bool
	// Metrics is what /metrics and the status page show. Default: a new
	// NewMetrics().
	Metrics *Metrics
	// Interval between status page updates. Default 1s.
	Interval time.Duration
	// ShutdownTimeout bounds how long Run waits for requests in progress
	// after ctx is done. Default 5s.
	ShutdownTimeout time.Duration
	// Logger gets start, stop and serve errors. Default: discard.
	Logger *slog.Logger
}

// Server serves the operations endpoints:
//
//	/metrics        Prometheus text format, from Metrics.Registry
//	/healthz        200 "ok" while serving, 503 "shutting down" once shutdown began
//	/status         the live status page (HTML)
//	/status/events  server-sent events: one Snapshot as JSON per Interval (?max=N: N, then end)
//	/status.json    one Snapshot as JSON
//	/debug/pprof/   net/http/pprof, only with Pprof (and only on loopback)
//	/               redirects to /status
//
// It is safe for concurrent use.
type Server struct {
	cfg      ServerConfig
	mux      *http.ServeMux
	shutdown atomic.Bool   // set once shutdown began; /healthz says 503
	quit     chan struct{} // closed when shutdown begins; ends event streams
	quitOnce sync.Once
}

// NewServer checks cfg and builds the handler. It returns an error wrapping
// ErrPprofNotLoopback for Pprof on an address that is not loopback, and
// ErrInvalidConfig for an address it cannot parse.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("ops: address %q: %w (%v)", cfg.Addr, ErrInvalidConfig, err)
	}
	if cfg.Pprof && !IsLoopback(host) {
		return nil, fmt.Errorf("ops: address %q: %w", cfg.Addr, ErrPprofNotLoopback)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), quit: make(chan struct{})}
	s.routes()
	return s, nil
}

// IsLoopback reports whether host (a name or an IP, no port) is
// "localhost" or a loopback IP. An empty host (every interface) is not.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) routes() {
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Metrics.Registry, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /healthz", s.healthz)
	page, _ := fs.Sub(static, "static")
	s.mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, page, "index.html")
	})
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(page)))
	s.mux.HandleFunc("GET /status/events", s.events)
	s.mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.cfg.Metrics.Snapshot(Snapshot{}))
	})
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/status", http.StatusFound)
	})
	if s.cfg.Pprof {
		s.mux.HandleFunc("/debug/pprof/", pprof.Index)
		s.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		s.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
}

// Handler returns the server's handler, for tests and for mounting it in
// another server.
func (s *Server) Handler() http.Handler { return s.mux }

// Shutdown marks the server as shutting down: /healthz answers 503 and the
// event streams end. Run calls it when its context is done; the broker may
// call it earlier, when it starts its own shutdown, so that a load
// balancer stops sending clients. It is idempotent.
func (s *Server) Shutdown() {
	s.quitOnce.Do(func() {
		s.shutdown.Store(true)
		close(s.quit)
	})
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.shutdown.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "shutting down\n")
		return
	}
	io.WriteString(w, "ok\n")
}

// events streams one Snapshot per Interval as server-sent events, the
// first at once, until the client goes or shutdown begins. With ?max=N it
// ends the stream after N snapshots and tells the browser not to reconnect
// for a day: a page that finishes loading, for headless browsers and
// screenshots.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	max, _ := strconv.Atoi(r.URL.Query().Get("max"))
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	var prev Snapshot
	if max > 0 {
		fmt.Fprintf(w, "retry: %d\n\n", (24 * time.Hour).Milliseconds())
	}
	for n := 1; ; n++ {
		snap := s.cfg.Metrics.Snapshot(prev)
		prev = snap
		b, err := json.Marshal(snap)
		if err != nil {
			return
		}
		if _, err := fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", b); err != nil {
			return
		}
		if err := rc.Flush(); err != nil || n == max {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.quit:
			return
		case <-t.C:
		}
	}
}

// Run listens on cfg.Addr and serves until ctx is done, then shuts down.
// It returns nil after a clean shutdown, or the listen or serve error.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("ops: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done, then shuts down; it closes ln. With
// Pprof, it refuses (ErrPprofNotLoopback) a listener whose address is not
// loopback.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.cfg.Pprof {
		if a, ok := ln.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
			ln.Close()
			return fmt.Errorf("ops: listener %s: %w", ln.Addr(), ErrPprofNotLoopback)
		}
	}
	hs := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.cfg.Logger.Info("ops serving", "addr", ln.Addr().String(), "pprof", s.cfg.Pprof)
	select {
	case err := <-errc:
		s.Shutdown()
		return fmt.Errorf("ops: serve: %w", err)
	case <-ctx.Done():
	}
	s.Shutdown()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	<-errc // http.ErrServerClosed
	if err != nil {
		return fmt.Errorf("ops: shutdown: %w", err)
	}
	return nil
}
