// Package pprof is an ingestion handler with its performance bugs left in
// (Slow), the same handler with them fixed (Ingester), and a loopback-only
// listener for net/http/pprof, so that the lesson can profile one under
// load, read each profile, and check each fix with a count.
//
// Slow has four problems, one for each profile that finds it: it compiles
// a regular expression for every line (CPU and allocations), holds one
// global lock across the whole request (mutex), hands each request's audit
// record to a goroutine that waits on a slow auditor (goroutine and block),
// and keeps every request body forever (heap).
//
// Importing net/http/pprof registers its handlers on http.DefaultServeMux,
// however it is imported (this package imports it for its handlers, so it
// does too). A program must therefore never serve DefaultServeMux on a
// public address. PprofServer serves the handlers on a mux of its own, and
// only on a loopback address.
package pprof

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"sync"
	"sync/atomic"
	"time"
)

// MaxBody is the largest request body a handler reads.
const MaxBody = 1 << 20

// ErrSyntax is returned, wrapped, for a line that is not
// "device,metric,value".
var ErrSyntax = errors.New("malformed line")

// ErrNotLoopback is returned, wrapped, by ListenPprof for an address that
// is not on a loopback interface.
var ErrNotLoopback = errors.New("pprof address is not loopback")

// Store keeps the last value per device and metric. It is safe for
// concurrent use.
type Store struct {
	mu    sync.Mutex          // guards last and lines
	last  map[string]*float64 // "device,metric" -> last value
	lines uint64              // lines stored
}

// Update stores value under key. It copies key (allocates) only the first
// time it sees it.
func (s *Store) Update(key []byte, value float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.last[string(key)] // a lookup with string(key) does not allocate
	if p == nil {
		if s.last == nil {
			s.last = make(map[string]*float64)
		}
		p = new(float64)
		s.last[string(key)] = p
	}
	*p = value
	s.lines++
}

// Lines returns how many lines were stored.
func (s *Store) Lines() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lines
}

// Last returns the last value stored for device and metric.
func (s *Store) Last(device, metric string) (float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.last[device+","+metric]
	if !ok {
		return 0, false
	}
	return *p, true
}

// AuditRecord says what one request did.
type AuditRecord struct {
	Lines  int
	Failed int
}

// Config sets up an Ingester. Its zero value works.
type Config struct {
	// AuditLog receives one line per request. Default io.Discard.
	AuditLog io.Writer
	// AuditQueue is how many records may wait for AuditLog; a request
	// that finds the queue full drops its record and counts it. Default
	// 1024.
	AuditQueue int
}

// Ingester is the fixed handler: POST lines "device,metric,value" and it
// stores each one. It is safe for concurrent use; Close stops its auditor.
type Ingester struct {
	store   Store
	queue   chan AuditRecord // records waiting for the auditor; never closed
	dropped atomic.Uint64    // records dropped because queue was full
	stop    chan struct{}    // closed by Close
	wg      sync.WaitGroup   // the auditor goroutine
	once    sync.Once
	log     io.Writer
}

// NewIngester starts an Ingester and its auditor goroutine.
func NewIngester(cfg Config) *Ingester {
	if cfg.AuditLog == nil {
		cfg.AuditLog = io.Discard
	}
	if cfg.AuditQueue <= 0 {
		cfg.AuditQueue = 1024
	}
	i := &Ingester{queue: make(chan AuditRecord, cfg.AuditQueue), stop: make(chan struct{}), log: cfg.AuditLog}
	i.wg.Add(1)
	go i.auditor()
	return i
}

// auditor writes queued records until Close, then writes what is left.
func (i *Ingester) auditor() {
	defer i.wg.Done()
	for {
		select {
		case r := <-i.queue:
			fmt.Fprintf(i.log, "lines=%d failed=%d\n", r.Lines, r.Failed)
		case <-i.stop:
			for {
				select {
				case r := <-i.queue:
					fmt.Fprintf(i.log, "lines=%d failed=%d\n", r.Lines, r.Failed)
				default:
					return
				}
			}
		}
	}
}

// Close stops the auditor after it has written the queued records.
func (i *Ingester) Close() error {
	i.once.Do(func() { close(i.stop) })
	i.wg.Wait()
	return nil
}

// Store returns the ingester's store.
func (i *Ingester) Store() *Store { return &i.store }

// Dropped returns how many audit records were dropped.
func (i *Ingester) Dropped() uint64 { return i.dropped.Load() }

// ServeHTTP stores every well-formed line of the body and answers with the
// number stored.
func (i *Ingester) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	rec := i.ingest(body)
	i.audit(rec)
	fmt.Fprintf(w, "%d\n", rec.Lines)
}

// ingest stores every well-formed line of body.
func (i *Ingester) ingest(body []byte) AuditRecord {
	var rec AuditRecord
	for len(body) > 0 {
		var line []byte
		line, body, _ = cutLine(body)
		if len(line) == 0 {
			continue
		}
		key, v, err := ParseLine(line)
		if err != nil {
			rec.Failed++
			continue
		}
		i.store.Update(key, v)
		rec.Lines++
	}
	return rec
}

// cutLine splits b at its first newline.
func cutLine(b []byte) (line, rest []byte, found bool) {
	for k, c := range b {
		if c == '\n' {
			return b[:k], b[k+1:], true
		}
	}
	return b, nil, false
}

// newPprofMux serves net/http/pprof's handlers on a mux of its own.
func newPprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", httppprof.Index) // also serves heap, goroutine, mutex, block...
	mux.HandleFunc("/debug/pprof/cmdline", httppprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
	return mux
}

// PprofServer serves the profiles on a loopback address. Close stops it.
type PprofServer struct {
	srv  *http.Server
	addr string
	done chan struct{} // closed when Serve has returned
}

// servePprof serves newPprofMux on ln until Close.
func servePprof(ln net.Listener) *PprofServer {
	p := &PprofServer{
		srv:  &http.Server{Handler: newPprofMux(), ReadHeaderTimeout: 5 * time.Second},
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(ln) // returns http.ErrServerClosed after Close
	}()
	return p
}

// Addr returns the address the server listens on.
func (p *PprofServer) Addr() string { return p.addr }

// Close stops the server and waits for it. It may be called more than once.
func (p *PprofServer) Close() error {
	err := p.srv.Close()
	<-p.done
	return err
}
