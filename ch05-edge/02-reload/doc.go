// Package reload swaps an edge gateway's configuration while it runs, from
// a watched file and from etcd, without stopping the message flow.
//
// A Holder keeps the current *Config in an atomic.Pointer. Readers call
// Load once per unit of work and use that snapshot to the end of it, so a
// message is processed with exactly one version, never half of each, and
// never waits for a reload. Apply decodes and validates a new version and
// swaps it in; an invalid one is rejected with an error wrapping
// ErrInvalid and the old version stays. WatchFile (fsnotify, with a
// polling fallback) and WatchEtcd (a watch on one key) feed Apply and
// report every attempt as an Event.
package reload

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"
)

// Config is one version of the gateway's processing configuration, as
// JSON. Config values are never modified once a Holder holds them.
type Config struct {
	Version  int      `json:"version"`   // > 0, and greater than the version it replaces
	Scale    float64  `json:"scale"`     // multiplies each reading; finite and not 0
	MaxBatch int      `json:"max_batch"` // readings per upstream batch, 1..10000
	Forward  []string `json:"forward"`   // topics forwarded upstream, none empty or with spaces
}

// Errors of Apply, WatchFile and WatchEtcd.
var (
	ErrInvalid        = errors.New("reload: invalid config")
	ErrStale          = errors.New("reload: config version is not newer")
	ErrDeleted        = errors.New("reload: config key deleted, keeping the current version")
	ErrNotImplemented = errors.New("reload: not implemented")
)

// Validate reports the first rule c breaks, wrapped in ErrInvalid.
func (c *Config) Validate() error {
	switch {
	case c.Version <= 0:
		return fmt.Errorf("%w: version %d: must be > 0", ErrInvalid, c.Version)
	case c.Scale == 0 || math.IsNaN(c.Scale) || math.IsInf(c.Scale, 0):
		return fmt.Errorf("%w: scale %v: must be finite and not 0", ErrInvalid, c.Scale)
	case c.MaxBatch < 1 || c.MaxBatch > 10000:
		return fmt.Errorf("%w: max_batch %d: must be 1..10000", ErrInvalid, c.MaxBatch)
	}
	for i, t := range c.Forward {
		if t == "" || strings.ContainsAny(t, " \t\n") {
			return fmt.Errorf("%w: forward[%d] %q: empty or contains spaces", ErrInvalid, i, t)
		}
	}
	return nil
}

// Holder holds the current configuration. It is safe for concurrent use:
// any number of goroutines may Load while one or more Apply. Create it
// with NewHolder.
type Holder struct {
	cur atomic.Pointer[Config] // the current version; never nil
}

// NewHolder returns a Holder whose current version is initial, which must
// be valid.
func NewHolder(initial Config) (*Holder, error) {
	if err := initial.Validate(); err != nil {
		return nil, err
	}
	h := &Holder{}
	h.cur.Store(&initial)
	return h, nil
}

// Load returns the current version. The caller must not modify it.
func (h *Holder) Load() *Config { return h.cur.Load() }

// Event reports one reload attempt by WatchFile or WatchEtcd.
type Event struct {
	Source  string        // the file path, or "etcd:" and the key
	Version int           // the version now current (the old one when Err != nil)
	Err     error         // nil when the new version was applied
	Took    time.Duration // from noticing the change to the swap (or rejection)
}

// send delivers ev on events (when events is not nil) unless done closes
// first. It reports false when done closed.
func send(events chan<- Event, done <-chan struct{}, ev Event) bool {
	if events == nil {
		return true
	}
	select {
	case events <- ev:
		return true
	case <-done:
		return false
	}
}
