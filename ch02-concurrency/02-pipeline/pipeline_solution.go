//go:build floodgate.solution

package pipeline

import (
	"context"
	"fmt"
)

// AddSource registers a device and starts the goroutine that forwards its
// queue into Out. It returns ErrDuplicateSource for a name already added
// and ErrClosed after Close.
func (p *Pipeline) AddSource(name string) (*Source, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("add source %q: %w", name, ErrClosed)
	}
	if _, ok := p.sources[name]; ok {
		return nil, fmt.Errorf("add source %q: %w", name, ErrDuplicateSource)
	}
	s := &Source{p: p, name: name, queue: make(chan Event, p.cfg.Buffer)}
	p.sources[name] = s
	p.wg.Add(1) // before go: Close's Wait must see this forwarder
	go p.forward(s)
	return s, nil
}

// forward moves one source's events into Out, in order, until Close closes
// the queue. Once abort is closed it discards what is left instead.
func (p *Pipeline) forward(s *Source) {
	defer p.wg.Done()
	for ev := range s.queue {
		select {
		case p.out <- ev:
			p.delivered.Add(1)
		case <-p.abort:
			p.discarded.Add(1)
		}
	}
}

// Send queues ev on the source, applying the pipeline's Policy when the
// queue is full. Under Block it returns the context's error if ctx ends
// first, and ErrClosed if the pipeline closes first. Under DropNewest it
// returns ErrDropped when ev did not fit. After Close it returns ErrClosed.
func (s *Source) Send(ctx context.Context, ev Event) error {
	p := s.p
	// The read lock keeps Close from closing the queue under our feet.
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return fmt.Errorf("send %s: %w", s.name, ErrClosed)
	}
	switch p.cfg.Policy {
	case DropNewest:
		select {
		case s.queue <- ev:
			p.accepted.Add(1)
			return nil
		default:
			p.droppedNewest.Add(1)
			return fmt.Errorf("send %s: %w", s.name, ErrDropped)
		}
	case DropOldest:
		for {
			select {
			case s.queue <- ev:
				p.accepted.Add(1)
				return nil
			default:
			}
			// Full: evict the oldest. The forwarder may have taken it
			// first, in which case there is room now and we retry.
			select {
			case <-s.queue:
				p.droppedOldest.Add(1)
			default:
			}
		}
	default: // Block
		select {
		case s.queue <- ev:
			p.accepted.Add(1)
			return nil
		case <-ctx.Done():
			return fmt.Errorf("send %s: %w", s.name, ctx.Err())
		case <-p.done:
			return fmt.Errorf("send %s: %w", s.name, ErrClosed)
		}
	}
}

// Close stops the pipeline in order: new sends fail with ErrClosed,
// senders blocked under Block return ErrClosed, every queued event is
// delivered through Out, and Out is closed. The consumer must keep reading
// Out until it is closed. If ctx ends before the queues have drained, what
// is left is discarded (and counted), and Close returns ctx's error. Every
// goroutine the pipeline started has returned when Close returns. Close may
// be called more than once.
func (p *Pipeline) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		close(p.done) // wake blocked senders so that they drop the read lock
		p.mu.Lock()
		p.closed = true
		for _, s := range p.sources {
			close(s.queue) // forwarders drain what is left, then return
		}
		p.mu.Unlock()
	})
	drained := make(chan struct{})
	go func() { // ends as soon as the forwarders do, which abort guarantees
		p.wg.Wait()
		close(drained)
	}()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		p.abortOnce.Do(func() { close(p.abort) })
		<-drained
		err = fmt.Errorf("close pipeline: %w", ctx.Err())
	}
	p.outOnce.Do(func() { close(p.out) })
	return err
}
