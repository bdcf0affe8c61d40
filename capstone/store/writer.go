package store

import (
	"container/heap"
	"errors"
	"fmt"
	"sync"
)

// Op names what a Change does.
type Op byte

// The changes a Writer takes, one per Store write method.
const (
	OpSaveSession    Op = iota + 1 // Change.Session
	OpDeleteSession                // Change.ClientID
	OpSetRetained                  // Change.Message
	OpPutInFlight                  // Change.InFlight
	OpDeleteInFlight               // Change.InFlight's ClientID, Direction and PacketID
)

// Change is one write, for Store.Apply and Writer.Submit. Only the fields
// its Op names are read.
type Change struct {
	Op       Op
	ClientID string
	Session  Session
	Message  Message
	InFlight InFlight
}

// check validates c as the matching Store method does.
func (c Change) check() error {
	switch c.Op {
	case OpSaveSession:
		if c.Session.ClientID == "" {
			return fmt.Errorf("store save session: empty client id: %w", ErrInvalid)
		}
	case OpDeleteSession:
		if c.ClientID == "" {
			return fmt.Errorf("store delete session: empty client id: %w", ErrInvalid)
		}
	case OpSetRetained:
		if c.Message.Topic == "" {
			return fmt.Errorf("store set retained: empty topic: %w", ErrInvalid)
		}
	case OpPutInFlight:
		return validFlight(c.InFlight)
	case OpDeleteInFlight:
		if c.InFlight.ClientID == "" {
			return fmt.Errorf("store delete in-flight: empty client id: %w", ErrInvalid)
		}
	default:
		return fmt.Errorf("store apply: op %d: %w", c.Op, ErrInvalid)
	}
	return nil
}

// ErrBatch wraps the error of a transaction that failed: none of its
// changes were kept.
var ErrBatch = errors.New("store: batch failed")

// WriterConfig configures NewWriter. The zero value works.
type WriterConfig struct {
	// QueueSize is how many changes may wait for the writer before Busy
	// reports true. Submit never blocks and never drops a change: the
	// caller uses Busy to refuse new work. Default 8192.
	QueueSize int
	// MaxBatch is the most changes one transaction takes. Default 1024.
	MaxBatch int
	// OnError, if set, is called from the writer goroutine with the error
	// of each failed transaction and how many changes it lost.
	OnError func(err error, changes int)
}

// Writer is the broker's one store writer: changes are submitted from any
// goroutine without blocking and numbered in submission order; one goroutine
// applies them in that order, as many as are waiting (up to MaxBatch) in one
// transaction, so one fsync commits them all (group commit), and then tells
// the waiters. Its goroutine starts when a change arrives and ends when the
// queue is empty; Close stops it for good after draining. A Writer is safe
// for concurrent use.
type Writer struct {
	st  Store
	cfg WriterConfig

	mu      sync.Mutex // guards every field below
	queue   []Change   // submitted, not yet taken by the writer goroutine
	last    uint64     // number of the last change submitted
	done    uint64     // every change numbered up to done has been applied or has failed
	failed  []span     // numbers of the changes that failed, oldest first
	lostTo  uint64     // failures up to lostTo were dropped from failed: assume every one did
	waiters waitHeap
	running bool
	idle    chan struct{} // closed when the running goroutine ends
	closed  bool
	// closedAt is the last change submitted before Close: every change
	// numbered above it was refused, so it counts as failed.
	closedAt uint64
}

type span struct{ from, to uint64 } // changes numbered in [from, to]

const maxFailedSpans = 256

type waiter struct {
	from, to uint64
	fn       func(ok bool)
}

type waitHeap []waiter

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(i, j int) bool { return h[i].to < h[j].to }
func (h waitHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *waitHeap) Push(x any)        { *h = append(*h, x.(waiter)) }
func (h *waitHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	*h = old[:len(old)-1]
	return w
}

// NewWriter returns a Writer over st.
func NewWriter(st Store, cfg WriterConfig) *Writer {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 8192
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1024
	}
	if cfg.OnError == nil {
		cfg.OnError = func(error, int) {}
	}
	return &Writer{st: st, cfg: cfg}
}

// Submit queues c and returns its number, which is higher than that of
// every change submitted before. It never blocks. It returns an error
// wrapping ErrInvalid for an invalid change and ErrClosed after Close; such
// a change is numbered all the same and counts as failed, so that a range
// that covers it is never reported committed (an acknowledgement that
// waits for it is withheld, not sent for a change that was never made).
func (w *Writer) Submit(c Change) (uint64, error) {
	err := c.check()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last++
	if w.closed {
		if !w.running {
			w.done = w.last // nothing is queued: decided, failed (okLocked)
		}
		return w.last, fmt.Errorf("store submit: %w", ErrClosed)
	}
	if err != nil {
		c = Change{} // no Op: the store refuses it, and it alone (run)
	}
	w.queue = append(w.queue, c)
	if !w.running {
		w.running = true
		w.idle = make(chan struct{})
		go w.run()
	}
	return w.last, err
}

// Last returns the number of the last change submitted (0: none). A change
// submitted after Last returns gets a higher number.
func (w *Writer) Last() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// Busy reports whether QueueSize changes or more wait for the writer.
func (w *Writer) Busy() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue) >= w.cfg.QueueSize
}

// Wait asks about the changes numbered in (from, to]. If they have all been
// applied, or one has failed, it returns decided true and ok (true: all
// committed) and never calls fn. Otherwise it returns decided false and
// calls fn(ok) once they are, from the writer goroutine, with none of the
// Writer's locks held. fn must not block.
func (w *Writer) Wait(from, to uint64, fn func(ok bool)) (ok, decided bool) {
	if to <= from {
		return true, true // no change to wait for
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if to <= w.done {
		return w.okLocked(from, to), true
	}
	heap.Push(&w.waiters, waiter{from, to, fn})
	return false, false
}

// okLocked reports whether no change numbered in (from, to] failed. w.mu
// is held; to <= w.done.
func (w *Writer) okLocked(from, to uint64) bool {
	if from < w.lostTo || (w.closed && to > w.closedAt) {
		return false
	}
	for _, s := range w.failed {
		if s.from <= to && s.to > from {
			return false
		}
	}
	return true
}

// run is the writer goroutine: it applies what is queued, batch after
// batch, until the queue is empty.
func (w *Writer) run() {
	var batch []Change
	var due []waiter
	var failed []span
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			// Changes refused after Close were never queued: they are
			// decided now (failed), and so are their waiters.
			w.done = w.last
			due = w.dueLocked(due[:0])
			oks := make([]bool, len(due))
			for i, d := range due {
				oks[i] = w.okLocked(d.from, d.to)
			}
			w.running = false
			close(w.idle)
			w.mu.Unlock()
			for i, d := range due {
				d.fn(oks[i])
			}
			return
		}
		n := min(len(w.queue), w.cfg.MaxBatch)
		batch = append(batch[:0], w.queue[:n]...)
		w.queue = w.queue[n:]
		if len(w.queue) == 0 {
			w.queue = nil // let the backing array go
		}
		from := w.done + 1
		w.mu.Unlock()

		failed, err := w.apply(batch, from, failed[:0])
		clear(batch) // drop references to payloads

		w.mu.Lock()
		w.done += uint64(n)
		lost := 0
		for _, s := range failed {
			lost += int(s.to - s.from + 1)
			w.failed = append(w.failed, s)
			if len(w.failed) > maxFailedSpans {
				w.lostTo = w.failed[0].to
				w.failed = w.failed[1:]
			}
		}
		due = w.dueLocked(due[:0])
		oks := make([]bool, len(due))
		for i, d := range due {
			oks[i] = w.okLocked(d.from, d.to)
		}
		w.mu.Unlock()

		if err != nil {
			w.cfg.OnError(fmt.Errorf("%w: %w", ErrBatch, err), lost)
		}
		for i, d := range due {
			d.fn(oks[i])
		}
		clear(due)
	}
}

// dueLocked appends to due the waiters whose ranges are decided, and
// takes them off the heap. w.mu is held.
func (w *Writer) dueLocked(due []waiter) []waiter {
	for len(w.waiters) > 0 && w.waiters[0].to <= w.done {
		due = append(due, heap.Pop(&w.waiters).(waiter))
	}
	return due
}

// apply commits batch, whose changes are numbered from from on, and
// appends to failed the numbers of those that did not commit, with the
// first error. When a transaction of several changes fails, they are
// applied again one by one, in order: a change the store refuses (invalid,
// or a key bbolt cannot hold) then fails alone, and the others of its batch
// commit; a store that refuses everything fails each of them.
func (w *Writer) apply(batch []Change, from uint64, failed []span) ([]span, error) {
	err := w.st.Apply(batch)
	if err == nil {
		return failed, nil
	}
	if len(batch) == 1 {
		return append(failed, span{from, from}), err
	}
	err = nil
	for i := range batch {
		e := w.st.Apply(batch[i : i+1])
		if e == nil {
			continue
		}
		if err == nil {
			err = e
		}
		n := from + uint64(i)
		if k := len(failed) - 1; k >= 0 && failed[k].to == n-1 {
			failed[k].to = n
		} else {
			failed = append(failed, span{n, n})
		}
	}
	return failed, err
}

// Flush waits until the writer is idle: every change submitted before (and
// while) it waits has been applied or has failed.
func (w *Writer) Flush() {
	for {
		w.mu.Lock()
		if w.done >= w.last && !w.running {
			w.mu.Unlock()
			return
		}
		idle := w.idle
		w.mu.Unlock()
		if idle == nil {
			return
		}
		<-idle
	}
}

// Close refuses new changes, applies those already queued, and returns once
// the writer goroutine has ended. It does not close the Store. Closing
// twice is a no-op.
func (w *Writer) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed, w.closedAt = true, w.last
	}
	w.mu.Unlock()
	w.Flush()
}
