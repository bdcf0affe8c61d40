// Package retry is self-healing in two pieces: Do retries an operation with
// exponential back-off and full jitter, and Supervise restarts a crashing
// worker with the same back-off until a restart budget is spent.
//
// Full jitter means the wait before retry k is drawn uniformly from
// [0, min(Max, Base·Multiplier^k)): the ceiling grows exponentially, and the
// randomness spreads a crowd of clients that failed at the same moment so
// they do not all come back at the same moment. The random source is a
// parameter (Backoff.Jitter), and waits use the time package, so tests run
// under testing/synctest with a fake clock and a seeded source.
package retry

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Backoff computes waits. Its zero value works.
type Backoff struct {
	// Base is the ceiling of the first wait. Default 100ms.
	Base time.Duration
	// Max caps every ceiling. Default 30s.
	Max time.Duration
	// Multiplier is how much the ceiling grows per attempt. Default 2.
	Multiplier float64
	// Jitter returns a uniform random int64 in [0, n) for n > 0. Default
	// rand.Int64N from math/rand/v2, which is safe for concurrent use; a
	// seeded *rand.Rand's Int64N is not, so give each goroutine its own.
	Jitter func(n int64) int64
}

// withDefaults returns b with its zero fields set to their defaults.
func (b Backoff) withDefaults() Backoff {
	if b.Base <= 0 {
		b.Base = 100 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 30 * time.Second
	}
	if b.Multiplier < 1 {
		b.Multiplier = 2
	}
	if b.Jitter == nil {
		b.Jitter = rand.Int64N
	}
	return b
}

// Config sets up Do. Its zero value works.
type Config struct {
	// Backoff sets the waits between attempts.
	Backoff Backoff
	// MaxAttempts is the most times the operation runs, the first one
	// included. Default 5.
	MaxAttempts int
}

var (
	// ErrExhausted is returned, wrapped together with the last error, when
	// every attempt failed.
	ErrExhausted = errors.New("retry: attempts exhausted")
	// ErrGaveUp is returned, wrapped together with the last crash, when a
	// supervisor's restart budget is spent.
	ErrGaveUp = errors.New("supervise: restart budget spent")
	// ErrPanic wraps the value of a worker's panic.
	ErrPanic = errors.New("worker panicked")
)

// permanent marks an error that retrying cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so that Do returns it at once instead of retrying
// (a malformed request, a refused credential). Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// SupervisorConfig sets up Supervise. Its zero value works.
type SupervisorConfig struct {
	// Backoff sets the waits between restarts. The attempt number is the
	// count of crashes within the last Period.
	Backoff Backoff
	// MaxRestarts is how many restarts are allowed within Period; one more
	// crash and Supervise gives up. Default 5.
	MaxRestarts int
	// Period is the span over which crashes are counted. Default 1 minute.
	Period time.Duration
	// Logger, if set, gets one record per crash. Default: no logging.
	Logger *slog.Logger
}

func (c SupervisorConfig) withDefaults() SupervisorConfig {
	c.Backoff = c.Backoff.withDefaults()
	if c.MaxRestarts <= 0 {
		c.MaxRestarts = 5
	}
	if c.Period <= 0 {
		c.Period = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
