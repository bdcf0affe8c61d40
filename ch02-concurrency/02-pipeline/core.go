package pipeline

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Pipeline merges the events of its sources into one channel, Out.
// Its methods are safe for concurrent use.
type Pipeline struct {
	cfg Config

	out   chan Event    // unbuffered; closed once every forwarder has returned
	done  chan struct{} // closed first by Close: wakes senders blocked in Send
	abort chan struct{} // closed when Close's context ends: forwarders discard

	closeOnce sync.Once
	abortOnce sync.Once
	outOnce   sync.Once
	wg        sync.WaitGroup // one count per forwarder goroutine

	mu      sync.RWMutex // guards sources and closed; Send holds it for reading
	sources map[string]*Source
	closed  bool

	accepted, delivered, droppedNewest, droppedOldest, discarded atomic.Uint64
}

// Source is one device's entry into the pipeline, with its own bounded
// queue. It is safe for concurrent use.
type Source struct {
	p     *Pipeline
	name  string
	queue chan Event // capacity Config.Buffer; closed by Close
}

// New returns a pipeline with no sources. It returns ErrBadConfig for a
// negative Buffer or an unknown Policy.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Buffer < 0 || cfg.Policy < Block || cfg.Policy > DropOldest {
		return nil, fmt.Errorf("new pipeline: %w: %+v", ErrBadConfig, cfg)
	}
	if cfg.Buffer == 0 {
		cfg.Buffer = 16
	}
	return &Pipeline{
		cfg:     cfg,
		out:     make(chan Event),
		done:    make(chan struct{}),
		abort:   make(chan struct{}),
		sources: make(map[string]*Source),
	}, nil
}

// Out is the consumer's channel. It is closed by Close once every queued
// event has been delivered (or discarded).
func (p *Pipeline) Out() <-chan Event { return p.out }

// Stats returns a snapshot of the counters.
func (p *Pipeline) Stats() Stats {
	return Stats{
		Accepted:      p.accepted.Load(),
		Delivered:     p.delivered.Load(),
		DroppedNewest: p.droppedNewest.Load(),
		DroppedOldest: p.droppedOldest.Load(),
		Discarded:     p.discarded.Load(),
	}
}

// Name returns the source's name.
func (s *Source) Name() string { return s.name }
