package ingest

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Server is a TCP ingestion server. Create it with New. Its methods are safe
// for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger

	// wg counts running connection goroutines; Add is called before each
	// `go` statement, by the goroutine that owns the accept loop.
	wg sync.WaitGroup

	closing atomic.Bool   // set, under mu, once Shutdown has begun
	done    chan struct{} // closed when Shutdown begins: wakes a backing-off Serve

	mu        sync.Mutex // guards the fields below
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	devices   map[string]*DeviceStats

	accepted, readings, malformed, oversized, acceptRetry atomic.Int64
}

// New returns a Server for cfg, with defaults filled in. It returns an error
// for a configuration it cannot honour; it never changes the caller's cfg.
func New(cfg Config) (*Server, error) {
	if cfg.MaxLineBytes == 0 {
		cfg.MaxLineBytes = 256
	}
	if cfg.MaxLineBytes < 16 {
		return nil, fmt.Errorf("ingest: MaxLineBytes %d is below the minimum of 16", cfg.MaxLineBytes)
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 2 * time.Minute
	}
	if cfg.MaxAcceptBackoff == 0 {
		cfg.MaxAcceptBackoff = time.Second
	}
	if cfg.IdleTimeout < 0 || cfg.MaxAcceptBackoff < 0 {
		return nil, fmt.Errorf("ingest: negative IdleTimeout or MaxAcceptBackoff")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Server{
		cfg:       cfg,
		log:       log,
		listeners: map[net.Listener]struct{}{},
		conns:     map[net.Conn]struct{}{},
		devices:   map[string]*DeviceStats{},
		done:      make(chan struct{}),
	}, nil
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	active := int64(len(s.conns))
	s.mu.Unlock()
	return Stats{
		Accepted:    s.accepted.Load(),
		Active:      active,
		Readings:    s.readings.Load(),
		Malformed:   s.malformed.Load(),
		Oversized:   s.oversized.Load(),
		AcceptRetry: s.acceptRetry.Load(),
	}
}

// Device returns a copy of one device's statistics, and whether the server
// has seen the device.
func (s *Server) Device(id string) (DeviceStats, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[id]
	if !ok {
		return DeviceStats{}, false
	}
	return *d, true
}

// record counts a valid reading, updates its device, and hands it to
// Config.Handle outside the lock.
func (s *Server) record(r Reading) {
	s.readings.Add(1)
	s.mu.Lock()
	d := s.devices[r.DeviceID]
	if d == nil {
		d = &DeviceStats{}
		s.devices[r.DeviceID] = d
	}
	d.Readings++
	d.Last = r
	d.LastSeen = time.Now()
	s.mu.Unlock()
	if s.cfg.Handle != nil {
		s.cfg.Handle(r)
	}
}

// ServeConn serves one connection until the peer closes it, it breaks the
// protocol, it idles past Config.IdleTimeout, or Shutdown ends it. It closes
// c before returning. It works with any net.Conn (a net.Pipe in tests, a
// TLS or WebSocket connection later in the workbook).
func (s *Server) ServeConn(c net.Conn) {
	if !s.track(c) {
		c.Close()
		return
	}
	s.serve(c)
}

// track registers c so that Shutdown can reach it and wait for it. It
// reports false, and leaves c alone, when the server is shutting down. The
// WaitGroup's Add happens under mu, before Shutdown can start to Wait.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.wg.Add(1)
	s.conns[c] = struct{}{}
	return true
}

// untrack closes c and releases what track took. serve defers it.
func (s *Server) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}
