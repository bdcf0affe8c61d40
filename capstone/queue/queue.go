// Package queue is the capstone's outbound queue: a bounded FIFO between the
// goroutine that routes a message and the goroutine that writes it to a
// client. It never blocks the producer. When a queue is over its budget,
// Push refuses the item and the caller applies the broker's slow-consumer
// policy: the subscriber is disconnected with the reason [SlowConsumer] and
// counted, so one slow reader never stalls the publishers or the other
// subscribers.
//
// The budget is in bytes, the size the producer gives each item (for the
// broker: the packet's encoded size), with a cap on the number of items as
// a backstop. A burst of many small messages to a consumer that keeps up
// fits in the bytes; a consumer that stops reading fills them and is cut
// off.
//
// The idea comes from chapter 2's bounded channels and chapter 4's
// backpressure lab: a queue without a bound is a memory leak with a delay.
package queue

import (
	"errors"
	"math"
	"sync"
)

// SlowConsumer is the name of the disconnect reason (and of its counter) the
// broker uses when a client's queue is full.
const SlowConsumer = "slow_consumer"

// The defaults of a Queue whose limits are 0.
const (
	// DefaultCapacity is the item cap: a backstop against many tiny
	// items, each of which costs memory beyond its size. With the default
	// budget it binds only for items under 64 bytes: a queue of 64-byte
	// MQTT payloads (about 80 bytes a packet) holds 12,945 of them.
	DefaultCapacity = 16_384
	// DefaultMaxBytes is the bytes budget: the sizes given to Push of the
	// items queued at once.
	DefaultMaxBytes = 1 << 20
)

// ErrFull is returned by Push when the queue holds its item cap already.
var ErrFull = errors.New("queue: full (item cap)")

// ErrOverBudget is returned by Push when the item would take the queue's
// bytes over its budget.
var ErrOverBudget = errors.New("queue: full (bytes budget)")

// ErrClosed is returned by Push after Close.
var ErrClosed = errors.New("queue: closed")

// Queue is a bounded FIFO safe for one or more producers and one consumer.
// Make it with New, or Init one held by value (one allocation fewer for a
// struct that embeds it). It must not be copied after first use.
type Queue[T any] struct {
	mu       sync.Mutex // guards every field below
	items    []T
	bytes    int   // sizes of items, summed
	maxBytes int   // bytes budget; < 0: none
	maxSeen  int   // the most bytes held at once since Init
	cap      int32 // item cap
	max      int32 // the most items held at once since Init
	closed   bool
	// ready holds one token, "items may be waiting, or the queue is
	// closed", for a consumer that waits on a channel (Ready). Made by the
	// first Ready: a consumer woken some other way never pays for it.
	ready chan struct{}
}

// New returns an empty queue that holds at most capacity items (0 means
// DefaultCapacity) and at most maxBytes bytes (0: DefaultMaxBytes; < 0: no
// bytes budget).
func New[T any](capacity, maxBytes int) *Queue[T] {
	q := new(Queue[T])
	q.Init(capacity, maxBytes)
	return q
}

// Init sets the limits of a zero Queue, as New does. Call it before the
// queue is shared.
func (q *Queue[T]) Init(capacity, maxBytes int) {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	if maxBytes == 0 {
		maxBytes = DefaultMaxBytes
	}
	q.cap, q.maxBytes = int32(min(capacity, math.MaxInt32)), maxBytes
}

// Push appends v, which counts size bytes against the budget. It returns
// ErrFull when the queue already holds its item cap, ErrOverBudget when
// size would take it over its bytes budget (an item alone bigger than the
// budget is refused too), and ErrClosed after Close; then it changes
// nothing. It never blocks.
func (q *Queue[T]) Push(v T, size int) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed:
		return ErrClosed
	case len(q.items) >= int(q.cap):
		return ErrFull
	case q.maxBytes > 0 && q.bytes+size > q.maxBytes:
		return ErrOverBudget
	}
	q.items = append(q.items, v)
	q.bytes += size
	q.max = max(q.max, int32(len(q.items)))
	q.maxSeen = max(q.maxSeen, q.bytes)
	q.signal()
	return nil
}

// signal leaves a token in ready, if there is a ready. q.mu is held, so a
// consumer that checked the queue under q.mu before this either saw the
// change or will find the token.
func (q *Queue[T]) signal() {
	if q.ready == nil {
		return
	}
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Ready returns a channel that receives a value after a Push or a Close;
// the consumer waits on it, then calls Drain (and Closed). A value may be
// stale (Drain then returns nothing). The channel is made on the first
// call, with a token in it if items are waiting already.
func (q *Queue[T]) Ready() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ready == nil {
		q.ready = make(chan struct{}, 1)
		if len(q.items) > 0 || q.closed {
			q.ready <- struct{}{}
		}
	}
	return q.ready
}

// Drain moves every queued item to the end of dst, in order, and returns
// it. The queue keeps no reference to them.
func (q *Queue[T]) Drain(dst []T) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	dst = append(dst, q.items...)
	if cap(q.items) > 64 {
		q.items = nil // a burst's array goes with it: an idle queue holds none
	} else {
		clear(q.items)
		q.items = q.items[:0]
	}
	q.bytes = 0
	return dst
}

// Take returns every queued item, in order, and leaves the queue empty
// and holding no array: the caller owns the slice. For a consumer that
// drains a queue only now and then (an event loop), so that an idle queue
// keeps no memory.
func (q *Queue[T]) Take() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items, q.bytes = nil, 0
	return items
}

// Len returns the number of items queued now.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// Bytes returns the bytes queued now.
func (q *Queue[T]) Bytes() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// Cap returns the queue's item cap.
func (q *Queue[T]) Cap() int { return int(q.cap) }

// MaxBytes returns the queue's bytes budget (< 0: none).
func (q *Queue[T]) MaxBytes() int { return q.maxBytes }

// HighWater returns the most items, and the most bytes, the queue has held
// at once.
func (q *Queue[T]) HighWater() (items, bytes int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return int(q.max), q.maxSeen
}

// Close makes every later Push fail with ErrClosed and wakes a consumer
// waiting on Ready. Items already queued stay for Drain. It is safe to
// call more than once.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.signal()
}

// Closed reports whether Close has been called.
func (q *Queue[T]) Closed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}
