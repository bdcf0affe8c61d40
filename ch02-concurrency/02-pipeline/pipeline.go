//go:build !floodgate.solution

package pipeline

import (
	"context"
	"errors"
)

// AddSource registers a device and starts the goroutine that forwards its
// queue into Out. It returns ErrDuplicateSource for a name already added
// and ErrClosed after Close.
func (p *Pipeline) AddSource(name string) (*Source, error) {
	// TODO(Task 1): under p.mu, refuse a closed pipeline and a duplicate
	// name, make the source's queue with capacity p.cfg.Buffer, record it,
	// and start p.forward(s) in a goroutine (p.wg.Add(1) first).
	return nil, errors.New("pipeline: AddSource not implemented")
}

// forward moves one source's events into Out, in order, until Close closes
// the queue. Once abort is closed it discards what is left instead.
func (p *Pipeline) forward(s *Source) {
	// TODO(Task 1): range over s.queue and hand each event to p.out,
	// counting p.delivered. (Task 4: give up on p.out once p.abort is
	// closed, counting p.discarded.) Call p.wg.Done when you return.
}

// Send queues ev on the source, applying the pipeline's Policy when the
// queue is full. Under Block it returns the context's error if ctx ends
// first, and ErrClosed if the pipeline closes first. Under DropNewest it
// returns ErrDropped when ev did not fit. After Close it returns ErrClosed.
func (s *Source) Send(ctx context.Context, ev Event) error {
	// TODO(Task 1): hold s.p.mu for reading; return ErrClosed if closed;
	// put ev in s.queue and count s.p.accepted.
	// TODO(Task 2): Block waits for room, ctx.Done() or s.p.done, whichever
	// comes first.
	// TODO(Task 3): DropNewest and DropOldest, with their counters.
	return nil
}

// Close stops the pipeline in order: new sends fail with ErrClosed,
// senders blocked under Block return ErrClosed, every queued event is
// delivered through Out, and Out is closed. The consumer must keep reading
// Out until it is closed. If ctx ends before the queues have drained, what
// is left is discarded (and counted), and Close returns ctx's error. Every
// goroutine the pipeline started has returned when Close returns. Close may
// be called more than once.
func (p *Pipeline) Close(ctx context.Context) error {
	// TODO(Task 1): under p.mu mark closed and close every queue; wait for
	// the forwarders (p.wg); close p.out.
	// TODO(Task 4): close p.done first, so that blocked senders let go of
	// the lock; if ctx ends before the forwarders are done, close p.abort;
	// make a second Close safe.
	return nil
}
