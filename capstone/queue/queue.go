// Package queue is the capstone's outbound queue: a bounded FIFO between the
// goroutine that routes a message and the goroutine that writes it to a
// client. It never blocks the producer. When a queue is full, Push refuses
// the item and the caller applies the broker's slow-consumer policy: the
// subscriber is disconnected with the reason [SlowConsumer] and counted, so
// one slow reader never stalls the publishers or the other subscribers.
//
// The idea comes from chapter 2's bounded channels and chapter 4's
// backpressure lab: a queue without a bound is a memory leak with a delay.
package queue

import (
	"errors"
	"sync"
)

// SlowConsumer is the name of the disconnect reason (and of its counter) the
// broker uses when a client's queue is full.
const SlowConsumer = "slow_consumer"

// DefaultCapacity is the capacity a Queue made with capacity 0 has.
const DefaultCapacity = 1000

// ErrFull is returned by Push when the queue holds its capacity already.
var ErrFull = errors.New("queue: full")

// ErrClosed is returned by Push after Close.
var ErrClosed = errors.New("queue: closed")

// Queue is a bounded FIFO safe for one or more producers and one consumer.
// Make it with New.
type Queue[T any] struct {
	mu     sync.Mutex // guards items, closed, max
	items  []T
	max    int // the most items held at once since New
	closed bool
	cap    int
	ready  chan struct{} // one token: "items may be waiting"
}

// New returns an empty queue that holds at most capacity items (0 means
// DefaultCapacity).
func New[T any](capacity int) *Queue[T] {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	return &Queue[T]{cap: capacity, ready: make(chan struct{}, 1)}
}

// Push appends v. It returns ErrFull, and changes nothing, when the queue
// already holds its capacity, and ErrClosed after Close. It never blocks.
func (q *Queue[T]) Push(v T) error {
	q.mu.Lock()
	switch {
	case q.closed:
		q.mu.Unlock()
		return ErrClosed
	case len(q.items) >= q.cap:
		q.mu.Unlock()
		return ErrFull
	}
	q.items = append(q.items, v)
	q.max = max(q.max, len(q.items))
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return nil
}

// Ready returns a channel that receives a value after a Push; the consumer
// waits on it, then calls Drain. A value may be stale (Drain then returns
// nothing).
func (q *Queue[T]) Ready() <-chan struct{} { return q.ready }

// Drain moves every queued item to the end of dst, in order, and returns it.
func (q *Queue[T]) Drain(dst []T) []T {
	q.mu.Lock()
	dst = append(dst, q.items...)
	clear(q.items)
	q.items = q.items[:0]
	q.mu.Unlock()
	return dst
}

// Len returns the number of items queued now.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// Cap returns the queue's capacity.
func (q *Queue[T]) Cap() int { return q.cap }

// HighWater returns the most items the queue has held at once.
func (q *Queue[T]) HighWater() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.max
}

// Close makes every later Push fail with ErrClosed. Items already queued stay
// for Drain. It is safe to call more than once.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}
