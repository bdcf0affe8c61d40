package retry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	errDown = errors.New("sink down")
	errBad  = errors.New("malformed record")
)

// highest is a Jitter that always draws the top of the range.
func highest(n int64) int64 { return n - 1 }

func seeded(seed uint64) func(int64) int64 { return rand.New(rand.NewPCG(seed, 1)).Int64N }

func TestTask1_FullJitterBackoff(t *testing.T) {
	t.Run("ceilings grow, then stop at Max", func(t *testing.T) {
		b := Backoff{Base: 100 * time.Millisecond, Max: 30 * time.Second, Jitter: highest}
		want := map[int]time.Duration{
			-1: 100 * time.Millisecond, 0: 100 * time.Millisecond, 1: 200 * time.Millisecond,
			3: 800 * time.Millisecond, 8: 25600 * time.Millisecond,
			9: 30 * time.Second, 62: 30 * time.Second, 1 << 20: 30 * time.Second,
		}
		for attempt, ceiling := range want {
			require.Equal(t, ceiling-1, b.Delay(attempt), "attempt %d", attempt)
		}
	})
	t.Run("the jitter gets the whole ceiling", func(t *testing.T) {
		var asked []int64
		b := Backoff{Base: time.Second, Multiplier: 3, Max: time.Minute,
			Jitter: func(n int64) int64 { asked = append(asked, n); return 0 }}
		for attempt := range 5 {
			require.Zero(t, b.Delay(attempt))
		}
		s := int64(time.Second)
		require.Equal(t, []int64{s, 3 * s, 9 * s, 27 * s, 60 * s}, asked)
	})
	t.Run("spread over the whole range", func(t *testing.T) {
		b := Backoff{Jitter: seeded(1)} // defaults: 100ms, ×2, 30s
		var sum, lo, hi time.Duration = 0, time.Hour, 0
		const n = 10_000
		for range n {
			d := b.Delay(3) // ceiling 800ms
			require.GreaterOrEqual(t, d, time.Duration(0))
			require.Less(t, d, 800*time.Millisecond)
			sum += d
			lo, hi = min(lo, d), max(hi, d)
		}
		mean := sum / n
		require.InDelta(t, float64(400*time.Millisecond), float64(mean), float64(20*time.Millisecond), "full jitter averages half the ceiling")
		require.Less(t, lo, 5*time.Millisecond)
		require.Greater(t, hi, 795*time.Millisecond)
	})
}

func TestTask2_Do(t *testing.T) {
	t.Run("retries until success, waiting the back-off", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			calls := 0
			start := time.Now()
			err := Do(t.Context(), Config{Backoff: Backoff{Jitter: seeded(7)}}, func(context.Context) error {
				calls++
				if calls < 4 {
					return errDown
				}
				return nil
			})
			require.NoError(t, err)
			require.Equal(t, 4, calls)
			replica := Backoff{Jitter: seeded(7)} // the same draws, in the same order
			want := replica.Delay(0) + replica.Delay(1) + replica.Delay(2)
			require.Positive(t, want)
			require.Equal(t, want, time.Since(start), "the fake clock moved by exactly the three waits")
		})
	})
	t.Run("gives up after MaxAttempts", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			calls := 0
			err := Do(t.Context(), Config{MaxAttempts: 3}, func(context.Context) error { calls++; return errDown })
			require.ErrorIs(t, err, ErrExhausted)
			require.ErrorIs(t, err, errDown)
			require.Equal(t, 3, calls)
		})
	})
	t.Run("a permanent error stops at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			calls := 0
			err := Do(t.Context(), Config{}, func(context.Context) error { calls++; return Permanent(errBad) })
			require.ErrorIs(t, err, errBad)
			require.NotErrorIs(t, err, ErrExhausted)
			require.Equal(t, 1, calls)
			require.NoError(t, Permanent(nil))
		})
	})
	t.Run("a done context cuts the wait short", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
			defer cancel()
			start := time.Now()
			calls := 0
			err := Do(ctx, Config{Backoff: Backoff{Base: time.Second, Jitter: highest}}, func(context.Context) error {
				calls++
				return errDown
			})
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.ErrorIs(t, err, errDown)
			require.Equal(t, 1, calls)
			require.Equal(t, 150*time.Millisecond, time.Since(start))
		})
	})
}

func TestTask3_Supervise(t *testing.T) {
	t.Run("restarts a crashing worker with back-off", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			var logs bytes.Buffer
			start := time.Now()
			var runs []time.Duration
			done := make(chan error, 1)
			stopped := false
			defer func() { // also on a failed assertion: never leave the goroutine behind
				if !stopped {
					cancel()
					<-done
				}
			}()
			go func() {
				done <- Supervise(ctx, SupervisorConfig{
					Backoff: Backoff{Base: time.Second, Jitter: highest},
					Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
				}, func(ctx context.Context) error {
					runs = append(runs, time.Since(start))
					switch len(runs) {
					case 1, 3:
						return errDown
					case 2:
						panic("nil map")
					}
					<-ctx.Done() // the fourth run stays up
					return ctx.Err()
				})
			}()
			time.Sleep(time.Minute) // move the fake clock past every back-off
			synctest.Wait()         // and let the fourth run block on ctx
			require.Len(t, runs, 4)
			// Crash at 0, wait <1s; crash, wait <2s; crash, wait <4s.
			ns := time.Nanosecond
			require.Equal(t, []time.Duration{0, time.Second - ns, 3*time.Second - 2*ns, 7*time.Second - 3*ns}, runs)
			require.Equal(t, 3, strings.Count(logs.String(), "worker crashed"))
			require.Contains(t, logs.String(), "nil map")
			cancel()
			stopped = true
			require.ErrorIs(t, <-done, context.Canceled)
		})
	})
	t.Run("gives up when the budget is spent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			runs := 0
			err := Supervise(t.Context(), SupervisorConfig{MaxRestarts: 3, Period: time.Minute},
				func(context.Context) error { runs++; panic("boom") })
			require.ErrorIs(t, err, ErrGaveUp)
			require.ErrorIs(t, err, ErrPanic)
			require.Equal(t, 4, runs, "the first run and 3 restarts")
		})
	})
	t.Run("crashes spread wider than Period never spend the budget", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var gaps []time.Duration
			last := time.Now()
			runs := 0
			err := Supervise(t.Context(), SupervisorConfig{MaxRestarts: 2, Period: time.Minute,
				Backoff: Backoff{Base: time.Second, Jitter: highest}},
				func(context.Context) error {
					runs++
					if runs == 10 {
						return nil // a clean exit ends supervision
					}
					gaps = append(gaps, time.Since(last))
					time.Sleep(2 * time.Minute)
					last = time.Now()
					return errDown
				})
			require.NoError(t, err)
			require.Equal(t, 10, runs)
			for _, g := range gaps[1:] {
				require.Equal(t, time.Second-time.Nanosecond, g, "each restart is a first restart again")
			}
		})
	})
}
