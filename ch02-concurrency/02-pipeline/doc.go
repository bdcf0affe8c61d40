// Package pipeline fans the events of many devices into one consumer
// through bounded per-device queues, and makes the choice of what happens
// when a queue is full explicit: block the device (Block), drop the event
// that does not fit (DropNewest) or drop the oldest queued event to make
// room (DropOldest). Every drop is counted, and Close shuts the pipeline
// down in order, leaving no goroutine behind.
package pipeline

import (
	"errors"
	"fmt"
)

// Event is one reading from one device.
type Event struct {
	Device string
	Seq    uint64
	Value  float64
}

// Policy says what Source.Send does when the source's queue is full.
type Policy int

const (
	// Block waits for room, for the context to end or for Close.
	// Nothing is lost; a slow consumer slows every device down.
	Block Policy = iota
	// DropNewest drops the event being sent and returns ErrDropped.
	// The device never waits; the newest readings are lost.
	DropNewest
	// DropOldest removes the oldest queued event to make room for the new
	// one. The device never waits; the queue always holds the freshest
	// readings.
	DropOldest
)

// String returns the policy's name.
func (p Policy) String() string {
	switch p {
	case Block:
		return "Block"
	case DropNewest:
		return "DropNewest"
	case DropOldest:
		return "DropOldest"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// Config configures a Pipeline. The zero value works.
type Config struct {
	// Buffer is the capacity of each source's queue. Zero means 16.
	Buffer int
	// Policy applies to every source. The zero value is Block.
	Policy Policy
}

// Stats are the pipeline's counters since New.
type Stats struct {
	Accepted      uint64 // events that entered a queue
	Delivered     uint64 // events handed to the consumer through Out
	DroppedNewest uint64 // events refused by DropNewest
	DroppedOldest uint64 // queued events evicted by DropOldest
	Discarded     uint64 // queued events thrown away because Close's context ended
}

var (
	// ErrClosed is returned by Send and AddSource after Close.
	ErrClosed = errors.New("pipeline: closed")
	// ErrDropped is returned by Send under DropNewest when the queue is full.
	ErrDropped = errors.New("pipeline: queue full, event dropped")
	// ErrDuplicateSource is returned by AddSource for a name already added.
	ErrDuplicateSource = errors.New("pipeline: duplicate source")
	// ErrBadConfig is returned by New for a negative buffer or unknown policy.
	ErrBadConfig = errors.New("pipeline: bad config")
)
