//go:build floodgate.solution

package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Delay returns the wait before retry number attempt (0 for the first
// retry): uniform in [0, min(Max, Base·Multiplier^attempt)). It never
// overflows, however large attempt is. Zero fields take their defaults.
func (b Backoff) Delay(attempt int) time.Duration {
	b = b.withDefaults()
	ceiling := float64(b.Base) * math.Pow(b.Multiplier, float64(max(attempt, 0)))
	if ceiling > float64(b.Max) || math.IsInf(ceiling, 0) || math.IsNaN(ceiling) {
		ceiling = float64(b.Max)
	}
	n := int64(ceiling)
	if n <= 0 {
		return 0
	}
	return time.Duration(b.Jitter(n))
}

// Do runs op until it succeeds, returns an error wrapped by Permanent, or
// has run MaxAttempts times, waiting Backoff.Delay between attempts. It
// returns nil on success; the unwrapped permanent error; an error wrapping
// ErrExhausted and the last error; or, if ctx is done first, an error
// wrapping ctx's error and the last error.
func Do(ctx context.Context, cfg Config, op func(ctx context.Context) error) error {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	cfg.Backoff = cfg.Backoff.withDefaults()
	var last error
	for attempt := range cfg.MaxAttempts {
		if attempt > 0 {
			if err := sleep(ctx, cfg.Backoff.Delay(attempt-1)); err != nil {
				return fmt.Errorf("retry: after %d attempts: %w", attempt, errors.Join(err, last))
			}
		}
		last = op(ctx)
		if last == nil {
			return nil
		}
		if p := (permanent{}); errors.As(last, &p) {
			return p.err
		}
	}
	return fmt.Errorf("retry: %d attempts: %w", cfg.MaxAttempts, errors.Join(ErrExhausted, last))
}

// sleep waits for d or until ctx is done, whichever is first.
func sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Supervise runs worker, and runs it again after a back-off each time it
// crashes (returns an error or panics), on the calling goroutine. It
// returns nil when worker returns nil; ctx's error when ctx is done; and an
// error wrapping ErrGaveUp and the last crash when more than MaxRestarts
// crashes fall within Period. A panic is recovered and wrapped with
// ErrPanic; panics in goroutines the worker starts are not caught.
func Supervise(ctx context.Context, cfg SupervisorConfig, worker func(ctx context.Context) error) error {
	cfg = cfg.withDefaults()
	var crashes []time.Time // crash times within the last Period, oldest first
	for {
		err := runOnce(ctx, worker)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		now := time.Now()
		kept := crashes[:0]
		for _, c := range crashes {
			if now.Sub(c) < cfg.Period {
				kept = append(kept, c)
			}
		}
		crashes = append(kept, now)
		if len(crashes) > cfg.MaxRestarts {
			return fmt.Errorf("supervise: %d crashes within %v: %w", len(crashes), cfg.Period, errors.Join(ErrGaveUp, err))
		}
		delay := cfg.Backoff.Delay(len(crashes) - 1)
		cfg.Logger.Warn("worker crashed; restarting", "err", err, "crashes", len(crashes), "delay", delay)
		if err := sleep(ctx, delay); err != nil {
			return err
		}
	}
}

// runOnce runs worker, turning a panic into an error that wraps ErrPanic.
func runOnce(ctx context.Context, worker func(ctx context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, p)
		}
	}()
	return worker(ctx)
}
