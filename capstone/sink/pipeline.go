package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"floodgate/capstone/ops"
	breaker "floodgate/ch04-tuning/05-breaker"
)

// Errors of the pipeline and sinks.
var (
	// ErrFull is returned by Submit when the memory queue and the spool are
	// both full: the record is refused and counted (drops_total{reason=
	// "sink_full"}), and nothing else changes.
	ErrFull = errors.New("sink: queue and spool full")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("sink: closed")
	// ErrRunning is returned by a second concurrent Run.
	ErrRunning = errors.New("sink: already running")
	// ErrInvalidConfig is returned, wrapped, by New and NewWebhook.
	ErrInvalidConfig = errors.New("sink: invalid config")
)

// Config configures a Pipeline. Its zero value works (and sends nothing:
// Filters is empty).
type Config struct {
	// Filters are the MQTT topic filters ("+" and "#" wildcards) whose
	// messages go to the sink. Default none.
	Filters []string
	// QueueSize is how many records the memory queue holds. Default 1024.
	QueueSize int
	// BatchSize is the most records one Sink.Write gets. Default 128.
	BatchSize int
	// SpoolDir holds the disk spool. Default
	// $TMPDIR/floodgate-sink-spool. Two pipelines must not share one.
	SpoolDir string
	// SpoolMaxBytes bounds the spool's undelivered bytes. Default 256 MiB.
	SpoolMaxBytes int64
	// SegmentBytes is the size at which the spool starts a new segment
	// file. Default 4 MiB.
	SegmentBytes int64
	// WriteThrough sends every record through the spool, never the
	// memory queue: an accepted record then survives a crash of the
	// process (SIGKILL), at the cost of one write(2) per Submit and a read
	// back. Default false: up to QueueSize accepted records live only in
	// memory until delivered, and are lost if the process dies (Close
	// moves them to the spool, so a clean restart loses nothing).
	WriteThrough bool
	// DeadLetter is the file log that receives batches a sink refused for
	// good (ErrPermanent), so they stop blocking the records behind them
	// and are not lost. Default SpoolDir/dead-letter.log; read it with
	// ReadFile.
	DeadLetter string
	// RetryInterval is how long the pipeline waits after a failed or
	// refused delivery before it asks the breaker again. Default 1s.
	RetryInterval time.Duration
	// Breaker configures chapter 4's breaker around the sink. Name
	// defaults to "sink"; OnStateChange, if set, is called after the
	// pipeline's own bookkeeping.
	Breaker breaker.Config
	// Metrics, if set, gets the sink gauges, counters and breaker state.
	Metrics *ops.Metrics
	// Logger gets state changes and I/O errors. Default: discard.
	Logger *slog.Logger
}

// Stats are the pipeline's counters since New.
type Stats struct {
	Accepted   uint64 // Submit returned nil
	Delivered  uint64 // the sink accepted
	Spilled    uint64 // written to the spool (by Submit or moved from memory)
	Rejected   uint64 // Submit returned ErrFull
	Failures   uint64 // deliveries that failed or that the breaker refused
	DeadLetter uint64 // records moved to the dead-letter log
	QueueDepth int    // records in memory now
	SpoolDepth int    // records in the spool now
	State      breaker.State
}

// Pipeline carries records from Submit to a Sink: a bounded memory queue,
// then chapter 4's breaker, then the sink; while the sink fails (or the
// breaker is open), records go to a disk spool and are delivered from it,
// in order, once the sink takes them again.
//
// Order: every record in memory is older than every record in the spool.
// Submit puts a record in memory only when the spool is empty, the breaker
// is not open and the queue has room; otherwise it appends it to the spool.
// The worker (Run) delivers memory first, then the spool from its front;
// when a delivery from memory fails, it moves the whole memory queue to
// the front of the spool. So the sink sees records in Submit order, and a
// record is only forgotten after the sink accepted it.
//
// Bound: Submit never waits for the sink. It takes the pipeline's mutex,
// which the worker holds only for bookkeeping and for moving the memory
// queue to the spool after a failure (one write(2) and one fsync of at
// most QueueSize records); the worker reads the spool outside it. Submit
// does at most one write(2) of its own. When the queue and the spool are
// both full it returns ErrFull at once.
//
// Methods are safe for concurrent use. Run must run for records to move;
// call Close after Run has returned.
type Pipeline struct {
	cfg     Config
	sink    Sink
	br      *breaker.Breaker
	log     *slog.Logger
	kick    chan struct{} // one token: "records may be waiting"
	open    atomic.Bool   // the breaker is open; set by OnStateChange
	running atomic.Bool

	dead *FileLog // the dead-letter log, opened on first use; only the worker touches it

	mu     sync.Mutex // guards every field below
	mem    []Record   // the memory queue, oldest first
	spool  *spool
	closed bool
	stats  Stats
}

// New opens the spool (resuming one left by an earlier run) and returns a
// pipeline to s. It does not start the worker: call Run.
func New(cfg Config, s Sink) (*Pipeline, error) {
	if s == nil {
		return nil, fmt.Errorf("sink.New: nil sink: %w", ErrInvalidConfig)
	}
	if cfg.QueueSize < 0 || cfg.BatchSize < 0 || cfg.SpoolMaxBytes < 0 || cfg.SegmentBytes < 0 || cfg.RetryInterval < 0 {
		return nil, fmt.Errorf("sink.New: negative size or interval: %w", ErrInvalidConfig)
	}
	for _, f := range cfg.Filters {
		if !validFilter(f) {
			return nil, fmt.Errorf("sink.New: topic filter %q: %w", f, ErrInvalidConfig)
		}
	}
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 1024
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 128
	}
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = filepath.Join(os.TempDir(), "floodgate-sink-spool")
	}
	if cfg.DeadLetter == "" {
		cfg.DeadLetter = filepath.Join(cfg.SpoolDir, "dead-letter.log")
	}
	def(&cfg.SpoolMaxBytes, 256<<20)
	def(&cfg.SegmentBytes, 4<<20)
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg.Filters = append([]string(nil), cfg.Filters...)
	p := &Pipeline{cfg: cfg, sink: s, log: cfg.Logger, kick: make(chan struct{}, 1)}
	bc := cfg.Breaker
	if bc.Name == "" {
		bc.Name = "sink"
	}
	if bc.IsFailure == nil { // a batch refused for good says nothing about the sink's health
		bc.IsFailure = func(err error) bool { return err != nil && !errors.Is(err, ErrPermanent) }
	}
	user := bc.OnStateChange
	bc.OnStateChange = func(name string, from, to breaker.State) {
		p.open.Store(to == breaker.Open)
		if cfg.Metrics != nil {
			cfg.Metrics.SetBreakerState(name, int(to))
		}
		p.log.Info("sink breaker", "breaker", name, "from", from.String(), "to", to.String())
		if user != nil {
			user(name, from, to)
		}
	}
	br, err := breaker.New(bc)
	if err != nil {
		return nil, fmt.Errorf("sink.New: %w", err)
	}
	p.br = br
	if cfg.Metrics != nil {
		cfg.Metrics.SetBreakerState(bc.Name, ops.BreakerClosed)
	}
	if p.spool, err = openSpool(cfg.SpoolDir, cfg.SpoolMaxBytes, cfg.SegmentBytes); err != nil {
		return nil, err
	}
	p.gauges()
	return p, nil
}

// Match reports whether topic matches one of the configured filters: the
// broker calls Submit only for those.
func (p *Pipeline) Match(topic string) bool {
	for _, f := range p.cfg.Filters {
		if matchFilter(f, topic) {
			return true
		}
	}
	return false
}

// Submit hands r to the pipeline without waiting for the sink. nil means
// the record is accepted: it will reach the sink, in order, at least once,
// across a clean restart; across a crash of the process too when it is in
// the spool (always with WriteThrough). Submit copies r.Payload (or
// writes it to the spool) before it returns, so the caller may reuse it. It returns ErrFull when the memory queue
// and the spool are both full, ErrClosed after Close, or the spool's I/O
// error; the record is then not accepted.
func (p *Pipeline) Submit(r Record) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return fmt.Errorf("sink submit: %w", ErrClosed)
	}
	var err error
	if !p.cfg.WriteThrough && p.spool.records == 0 && !p.open.Load() && len(p.mem) < p.cfg.QueueSize {
		r.Payload = bytes.Clone(r.Payload) // the caller may reuse its buffer
		p.mem = append(p.mem, r)
	} else if err = p.spool.append([]Record{r}); err == nil {
		p.stats.Spilled++
		p.count("spilled", 1)
	}
	if err != nil {
		p.stats.Rejected++
		p.mu.Unlock()
		p.count("rejected", 1)
		if p.cfg.Metrics != nil {
			p.cfg.Metrics.Drops.WithLabelValues(ops.DropSinkFull).Inc()
		}
		if errors.Is(err, ErrSpoolFull) {
			return fmt.Errorf("sink submit: %w (%w)", ErrFull, err)
		}
		return fmt.Errorf("sink submit: %w", err)
	}
	p.stats.Accepted++
	p.gauges()
	p.mu.Unlock()
	p.count("accepted", 1)
	select {
	case p.kick <- struct{}{}:
	default:
	}
	return nil
}

// Run moves records to the sink until ctx is done, then returns nil. It
// returns ErrRunning if another Run is active and ErrClosed after Close.
func (p *Pipeline) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return fmt.Errorf("sink run: %w", ErrRunning)
	}
	defer p.running.Store(false)
	timer := time.NewTimer(p.cfg.RetryInterval)
	defer timer.Stop()
	for {
		delivered, failed, err := p.step(ctx)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if delivered {
			continue
		}
		p.mu.Lock()
		if err := p.spool.sync(); err != nil {
			p.log.Error("sink spool sync", "err", err)
		}
		p.mu.Unlock()
		timer.Reset(p.cfg.RetryInterval)
		if failed {
			select {
			case <-ctx.Done():
				return nil
			case <-timer.C:
			}
			continue
		}
		select { // idle: wait for a Submit
		case <-ctx.Done():
			return nil
		case <-p.kick:
		case <-timer.C:
		}
	}
}

// step makes one delivery attempt. delivered: a batch reached the sink;
// failed: the sink failed or the breaker refused; neither: nothing to do.
func (p *Pipeline) step(ctx context.Context) (delivered, failed bool, err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false, false, fmt.Errorf("sink run: %w", ErrClosed)
	}
	var batch []Record
	var nbytes int64
	fromSpool := false
	switch {
	case len(p.mem) > 0:
		batch = p.mem[:min(len(p.mem), p.cfg.BatchSize)]
		p.mu.Unlock()
	case p.spool.records > 0:
		f, off, left := p.spool.front()
		p.mu.Unlock()
		// Read outside the mutex: only this goroutine removes segments.
		batch, nbytes, err = readFrames(f, off, left, p.cfg.BatchSize)
		fromSpool = true
	default:
		p.mu.Unlock()
	}
	if err != nil {
		p.log.Error("sink spool read", "err", err)
		return false, true, nil
	}
	if len(batch) == 0 {
		return false, false, nil
	}

	err = p.br.Execute(func() error { return p.sink.Write(ctx, batch) })
	dead := false
	if errors.Is(err, ErrPermanent) {
		p.log.Error("sink refused a batch for good; moving it to the dead-letter log",
			"records", len(batch), "file", p.cfg.DeadLetter, "err", err)
		if err = p.deadLetter(ctx, batch); err == nil {
			dead = true
		}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		if fromSpool {
			if aerr := p.spool.ack(len(batch), nbytes); aerr != nil {
				p.log.Error("sink spool ack", "err", aerr)
			}
		} else {
			p.mem = p.mem[len(batch):]
		}
		if dead {
			p.stats.DeadLetter += uint64(len(batch))
			p.count("dead_letter", len(batch))
		} else {
			p.stats.Delivered += uint64(len(batch))
			p.count("delivered", len(batch))
		}
		p.gauges()
		return true, false, nil
	}
	p.stats.Failures++
	if !errors.Is(err, breaker.ErrOpen) && !errors.Is(err, breaker.ErrTooManyProbes) {
		p.log.Warn("sink write failed", "records", len(batch), "err", err)
	}
	// Move memory to the front of the spool, so that it survives a crash
	// and new records queue behind it there.
	if n := len(p.mem); n > 0 {
		if serr := p.spool.prepend(p.mem); serr != nil {
			p.log.Error("sink spill", "err", serr) // keep the records in memory
		} else {
			p.mem = nil
			p.stats.Spilled += uint64(n)
			p.count("spilled", n)
		}
	}
	p.gauges()
	return false, true, nil
}

// deadLetter appends batch to the dead-letter log, opening it on first use.
func (p *Pipeline) deadLetter(ctx context.Context, batch []Record) error {
	if p.dead == nil {
		l, err := OpenFile(FileConfig{Path: p.cfg.DeadLetter})
		if err != nil {
			return err
		}
		p.dead = l
	}
	return p.dead.Write(ctx, batch)
}

// Stats returns the counters now.
func (p *Pipeline) Stats() Stats {
	st := p.br.State()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.QueueDepth = len(p.mem)
	s.SpoolDepth = p.spool.records
	s.State = st
	return s
}

// Close moves the records still in memory to the spool (so the next New
// delivers them), fsyncs and closes the spool, and closes the sink. Call it
// after Run has returned.
func (p *Pipeline) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return fmt.Errorf("sink close: %w", ErrClosed)
	}
	p.closed = true
	err := p.spool.prepend(p.mem)
	if err == nil {
		p.mem = nil
	}
	err = errors.Join(err, p.spool.close())
	if p.dead != nil {
		err = errors.Join(err, p.dead.Close())
	}
	p.mu.Unlock()
	return errors.Join(err, p.sink.Close())
}

// gauges updates the depth gauges. p.mu must be held.
func (p *Pipeline) gauges() {
	if m := p.cfg.Metrics; m != nil {
		m.SinkQueueDepth.Set(float64(len(p.mem)))
		m.SinkSpillDepth.Set(float64(p.spool.records))
	}
}

func (p *Pipeline) count(result string, n int) {
	if m := p.cfg.Metrics; m != nil {
		m.SinkRecords.WithLabelValues(result).Add(float64(n))
	}
}

// validFilter checks an MQTT topic filter's wildcards.
func validFilter(f string) bool {
	if f == "" {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1, l != "#" && strings.Contains(l, "#"),
			l != "+" && strings.Contains(l, "+"):
			return false
		}
	}
	return true
}

// matchFilter reports whether topic matches filter; a filter starting with
// a wildcard does not match a topic starting with "$" [MQTT-4.7.2-1].
func matchFilter(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) || (f != "+" && f != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}
