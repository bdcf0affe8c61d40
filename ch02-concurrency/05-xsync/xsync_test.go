package xsync

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errBoom = errors.New("config service: 500")

// wait sleeps d of the bubble's fake time, or returns ctx's error first.
func wait(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gauge tracks how many of something run at once, and the most ever.
type gauge struct{ now, peak atomic.Int64 }

func (g *gauge) add(n int64) {
	v := g.now.Add(n)
	for {
		p := g.peak.Load()
		if v <= p || g.peak.CompareAndSwap(p, v) {
			return
		}
	}
}

func ids(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("dev-%02d", i)
	}
	return s
}

func TestTask1_FetchAll(t *testing.T) {
	t.Run("bounded and in order", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var g gauge
			fetch := func(ctx context.Context, id string) (DeviceConfig, error) {
				g.add(1)
				defer g.add(-1)
				if err := wait(ctx, time.Second); err != nil {
					return DeviceConfig{}, err
				}
				return DeviceConfig{ID: id, Firmware: "1.4." + id}, nil
			}
			start := time.Now()
			got, err := FetchAll(t.Context(), ids(20), 3, fetch)
			require.NoError(t, err)
			require.Len(t, got, 20)
			for i, id := range ids(20) {
				assert.Equal(t, DeviceConfig{ID: id, Firmware: "1.4." + id}, got[i])
			}
			assert.EqualValues(t, 3, g.peak.Load(), "at most 3 fetches at a time, and 3 when there is work")
			assert.Equal(t, 7*time.Second, time.Since(start), "20 one-second fetches, 3 at a time")
		})
	})
	t.Run("first error cancels the rest", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var started atomic.Int64
			fetch := func(ctx context.Context, id string) (DeviceConfig, error) {
				if ctx.Err() != nil {
					return DeviceConfig{}, ctx.Err()
				}
				started.Add(1)
				if id == "dev-01" {
					_ = wait(ctx, time.Second)
					return DeviceConfig{}, errBoom
				}
				return DeviceConfig{ID: id}, wait(ctx, 10*time.Second)
			}
			start := time.Now()
			got, err := FetchAll(t.Context(), ids(10), 3, fetch)
			require.ErrorIs(t, err, errBoom)
			assert.Contains(t, err.Error(), "dev-01", "the error names the device")
			assert.Nil(t, got)
			assert.Equal(t, time.Second, time.Since(start), "the others are cancelled, not waited out")
			assert.EqualValues(t, 3, started.Load(), "no fetch starts after the error")
		})
	})
	t.Run("limit below one means one", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var g gauge
			fetch := func(ctx context.Context, id string) (DeviceConfig, error) {
				g.add(1)
				defer g.add(-1)
				return DeviceConfig{ID: id}, wait(ctx, time.Second)
			}
			got, err := FetchAll(t.Context(), ids(4), 0, fetch)
			require.NoError(t, err)
			assert.Len(t, got, 4)
			assert.EqualValues(t, 1, g.peak.Load())
		})
	})
}

func TestTask2_WeightedJobs(t *testing.T) {
	t.Run("never over capacity, in order", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var used gauge
			var mu sync.Mutex
			startedAt := map[string]time.Duration{}
			start := time.Now()
			job := func(name string, w int64, d time.Duration) Job {
				return Job{Name: name, Weight: w, Run: func(ctx context.Context) error {
					used.add(w)
					defer used.add(-w)
					mu.Lock()
					startedAt[name] = time.Since(start)
					mu.Unlock()
					return wait(ctx, d)
				}}
			}
			err := RunJobs(t.Context(), 10, []Job{
				job("upload-a", 5, 2*time.Second),
				job("upload-b", 5, 2*time.Second),
				job("reindex", 10, time.Second), // needs everything: waits for a and b
				job("ping", 1, time.Second),     // light, but queued behind reindex
			})
			require.NoError(t, err)
			assert.LessOrEqual(t, used.peak.Load(), int64(10), "running weight never exceeds capacity")
			assert.EqualValues(t, 10, used.peak.Load())
			assert.Equal(t, map[string]time.Duration{
				"upload-a": 0, "upload-b": 0, "reindex": 2 * time.Second, "ping": 3 * time.Second,
			}, startedAt)
			assert.Equal(t, 4*time.Second, time.Since(start))
		})
	})
	t.Run("a job heavier than capacity", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ran := false
			// Without the up-front check, Acquire(11) of 10 would wait for
			// the context: this deadline turns that into a failure.
			ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
			defer cancel()
			err := RunJobs(ctx, 10, []Job{
				{Name: "small", Weight: 1, Run: func(context.Context) error { ran = true; return nil }},
				{Name: "huge", Weight: 11, Run: func(context.Context) error { return nil }},
			})
			require.ErrorIs(t, err, ErrTooHeavy)
			assert.False(t, ran, "nothing runs when a job can never fit")
		})
	})
	t.Run("first error cancels the others", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var lateRan atomic.Bool
			start := time.Now()
			err := RunJobs(t.Context(), 2, []Job{
				{Name: "flaky", Weight: 1, Run: func(ctx context.Context) error {
					_ = wait(ctx, time.Second)
					return errBoom
				}},
				{Name: "long", Weight: 1, Run: func(ctx context.Context) error { return wait(ctx, time.Hour) }},
				{Name: "late", Weight: 2, Run: func(context.Context) error { lateRan.Store(true); return nil }},
			})
			require.ErrorIs(t, err, errBoom)
			assert.Contains(t, err.Error(), "flaky")
			assert.Equal(t, time.Second, time.Since(start))
			assert.False(t, lateRan.Load(), "a job waiting for room does not start after an error")
		})
	})
	t.Run("the caller's deadline stops the waiting", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			err := RunJobs(ctx, 1, []Job{
				{Name: "a", Weight: 1, Run: func(ctx context.Context) error { return wait(ctx, 2*time.Second) }},
				{Name: "b", Weight: 1, Run: func(ctx context.Context) error { return wait(ctx, 2*time.Second) }},
			})
			require.ErrorIs(t, err, context.DeadlineExceeded)
		})
	})
}

// countingFetch returns a FetchFunc that takes a second and counts calls.
func countingFetch(calls *atomic.Int64) FetchFunc {
	return func(ctx context.Context, id string) (DeviceConfig, error) {
		calls.Add(1)
		if err := wait(ctx, time.Second); err != nil {
			return DeviceConfig{}, err
		}
		return DeviceConfig{ID: id, ReportEvery: time.Minute}, nil
	}
}

func TestTask3_SingleFlightCache(t *testing.T) {
	t.Run("concurrent misses make one fetch", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var calls atomic.Int64
			c := NewCache(countingFetch(&calls), CacheConfig{})
			var wg sync.WaitGroup
			errs := make([]error, 50)
			got := make([]DeviceConfig, 50)
			for i := range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got[i], errs[i] = c.Get(t.Context(), "dev-07")
				}()
			}
			wg.Wait()
			for i := range 50 {
				require.NoError(t, errs[i])
				assert.Equal(t, DeviceConfig{ID: "dev-07", ReportEvery: time.Minute}, got[i])
			}
			assert.EqualValues(t, 1, calls.Load(), "50 concurrent misses, one fetch")

			_, err := c.Get(t.Context(), "dev-07")
			require.NoError(t, err)
			assert.EqualValues(t, 1, calls.Load(), "then the cache answers")
			_, err = c.Get(t.Context(), "dev-08")
			require.NoError(t, err)
			assert.EqualValues(t, 2, calls.Load(), "another device is another fetch")
		})
	})
	t.Run("one caller giving up does not fail the others", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var calls atomic.Int64
			c := NewCache(countingFetch(&calls), CacheConfig{})
			impatient, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			errA := make(chan error, 1)
			go func() { _, err := c.Get(impatient, "dev-01"); errA <- err }()
			cfg, err := c.Get(t.Context(), "dev-01")
			require.NoError(t, err, "the patient caller still gets the configuration")
			assert.Equal(t, "dev-01", cfg.ID)
			assert.Equal(t, time.Second, time.Since(start))
			require.ErrorIs(t, <-errA, context.DeadlineExceeded)
			assert.EqualValues(t, 1, calls.Load())
		})
	})
	t.Run("errors are not cached", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var calls atomic.Int64
			c := NewCache(func(ctx context.Context, id string) (DeviceConfig, error) {
				if calls.Add(1) == 1 {
					return DeviceConfig{}, errBoom
				}
				return DeviceConfig{ID: id}, nil
			}, CacheConfig{})
			_, err := c.Get(t.Context(), "dev-02")
			require.ErrorIs(t, err, errBoom)
			cfg, err := c.Get(t.Context(), "dev-02")
			require.NoError(t, err)
			assert.Equal(t, "dev-02", cfg.ID)
			assert.EqualValues(t, 2, calls.Load())
		})
	})
	t.Run("a stuck fetch is bounded by the timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := NewCache(func(ctx context.Context, id string) (DeviceConfig, error) {
				<-ctx.Done()
				return DeviceConfig{}, ctx.Err()
			}, CacheConfig{Timeout: 3 * time.Second})
			start := time.Now()
			_, err := c.Get(t.Context(), "dev-03")
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Equal(t, 3*time.Second, time.Since(start))
		})
	})
}
