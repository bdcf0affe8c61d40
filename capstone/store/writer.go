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
// a change gets no number (0).
func (w *Writer) Submit(c Change) (uint64, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, fmt.Errorf("store submit: %w", ErrClosed)
	}
	w.last++
	w.queue = append(w.queue, c)
	if !w.running {
		w.running = true
		w.idle = make(chan struct{})
		go w.run()
	}
	return w.last, nil
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
	if from < w.lostTo {
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
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			w.running = false
			close(w.idle)
			w.mu.Unlock()
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

		err := w.st.Apply(batch)
		clear(batch) // drop references to payloads

		w.mu.Lock()
		w.done += uint64(n)
		if err != nil {
			w.failed = append(w.failed, span{from, w.done})
			if len(w.failed) > maxFailedSpans {
				w.lostTo = w.failed[0].to
				w.failed = w.failed[1:]
			}
		}
		due = due[:0]
		for len(w.waiters) > 0 && w.waiters[0].to <= w.done {
			due = append(due, heap.Pop(&w.waiters).(waiter))
		}
		oks := make([]bool, len(due))
		for i, d := range due {
			oks[i] = w.okLocked(d.from, d.to)
		}
		w.mu.Unlock()

		if err != nil {
			w.cfg.OnError(fmt.Errorf("%w: %w", ErrBatch, err), n)
		}
		for i, d := range due {
			d.fn(oks[i])
		}
		clear(due)
	}
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
	w.closed = true
	w.mu.Unlock()
	w.Flush()
}
