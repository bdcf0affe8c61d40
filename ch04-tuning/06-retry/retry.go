//go:build !floodgate.solution

package retry

import (
	"context"
	"time"
)

// Delay returns the wait before retry number attempt (0 for the first
// retry): uniform in [0, min(Max, Base·Multiplier^attempt)). It never
// overflows, however large attempt is. Zero fields take their defaults.
func (b Backoff) Delay(attempt int) time.Duration {
	// TODO: Task 1. b = b.withDefaults(); compute the ceiling without
	// overflowing, cap it at Max, and draw from b.Jitter.
	return 0
}

// Do runs op until it succeeds, returns an error wrapped by Permanent, or
// has run MaxAttempts times, waiting Backoff.Delay between attempts. It
// returns nil on success; the unwrapped permanent error; an error wrapping
// ErrExhausted and the last error; or, if ctx is done first, an error
// wrapping ctx's error and the last error.
func Do(ctx context.Context, cfg Config, op func(ctx context.Context) error) error {
	// TODO: Task 2. Loop over attempts; wait with a timer and ctx.Done()
	// between them.
	return nil
}

// Supervise runs worker, and runs it again after a back-off each time it
// crashes (returns an error or panics), on the calling goroutine. It
// returns nil when worker returns nil; ctx's error when ctx is done; and an
// error wrapping ErrGaveUp and the last crash when more than MaxRestarts
// crashes fall within Period. A panic is recovered and wrapped with
// ErrPanic; panics in goroutines the worker starts are not caught.
func Supervise(ctx context.Context, cfg SupervisorConfig, worker func(ctx context.Context) error) error {
	// TODO: Task 3. Run the worker, recovering panics; count crashes within
	// Period; give up past MaxRestarts; otherwise back off and restart.
	return nil
}
