package breaker

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errDown = errors.New("sink down")

// clock is a time source the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func fail() error { return errDown }
func ok() error   { return nil }

// kind names a breaker's answer so ours and gobreaker's can be compared.
func kind(err error) string {
	switch {
	case err == nil:
		return "allowed"
	case errors.Is(err, ErrOpen), errors.Is(err, gobreaker.ErrOpenState):
		return "open"
	case errors.Is(err, ErrTooManyProbes), errors.Is(err, gobreaker.ErrTooManyRequests):
		return "too many probes"
	}
	return err.Error()
}

// differential replays one random schedule of calls, finishes and pauses
// through our breaker and gobreaker's two-step breaker, inside a synctest
// bubble so both read the same fake time.Now, and fails at the first step
// where their answers or states differ. It returns the transitions each
// one reported.
func differential(t *testing.T, seed uint64, cfg Config, st gobreaker.Settings) (mine, theirs []string) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		cfg.OnStateChange = func(_ string, from, to State) {
			mu.Lock()
			mine = append(mine, from.String()+">"+to.String())
			mu.Unlock()
		}
		st.OnStateChange = func(_ string, from, to gobreaker.State) {
			theirs = append(theirs, from.String()+">"+to.String())
		}
		b, err := New(cfg)
		require.NoError(t, err)
		ref := gobreaker.NewTwoStepCircuitBreaker[any](st)
		rng := rand.New(rand.NewPCG(seed, 7))
		type call struct {
			mine   func(error)
			theirs func(error)
		}
		var open []call
		seen := map[string]int{}
		for step := range 3000 {
			switch r := rng.IntN(10); {
			case r < 2:
				time.Sleep(time.Duration(rng.Int64N(int64(1500 * time.Millisecond))))
			case r < 6 || len(open) == 0:
				md, merr := b.Allow()
				rd, rerr := ref.Allow()
				require.Equal(t, kind(rerr), kind(merr), "step %d: Allow", step)
				seen[kind(merr)]++
				if merr == nil {
					open = append(open, call{md, rd})
				}
			default:
				i := rng.IntN(len(open))
				var err error
				if rng.IntN(3) == 0 {
					err = errDown
				}
				open[i].mine(err)
				open[i].theirs(err)
				open = append(open[:i], open[i+1:]...)
			}
			require.Equal(t, int(ref.State()), int(b.State()), "step %d: State", step)
		}
		// Every branch of the state machine was visited.
		require.Positive(t, seen["allowed"])
		require.Positive(t, seen["open"])
		require.Positive(t, seen["too many probes"])
	})
	return mine, theirs
}

var consecutiveCfg = Config{ConsecutiveFailures: 3, OpenTimeout: 5 * time.Second, HalfOpenProbes: 2}

var consecutiveSettings = gobreaker.Settings{
	MaxRequests: 2,
	Timeout:     5 * time.Second,
	ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
}

var ratioCfg = Config{
	ConsecutiveFailures: -1, FailureRatio: 0.5, MinRequests: 6,
	Window: 4 * time.Second, Buckets: 4, OpenTimeout: 5 * time.Second, HalfOpenProbes: 2,
}

var ratioSettings = gobreaker.Settings{
	MaxRequests:  2,
	Interval:     4 * time.Second,
	BucketPeriod: time.Second,
	Timeout:      5 * time.Second,
	ReadyToTrip: func(c gobreaker.Counts) bool {
		return c.Requests >= 6 && float64(c.TotalFailures)/float64(c.Requests) >= 0.5
	},
}

func TestTask1_StateMachine(t *testing.T) {
	t.Run("closed, open, half-open, closed", func(t *testing.T) {
		c := newClock()
		b, err := New(Config{ConsecutiveFailures: 3, OpenTimeout: 10 * time.Second, HalfOpenProbes: 2, Now: c.Now})
		require.NoError(t, err)
		require.Equal(t, Closed, b.State())
		require.ErrorIs(t, b.Execute(fail), errDown)
		require.ErrorIs(t, b.Execute(fail), errDown)
		require.NoError(t, b.Execute(ok), "a success resets the run of failures")
		for range 3 {
			require.ErrorIs(t, b.Execute(fail), errDown)
		}
		require.Equal(t, Open, b.State())
		ran := false
		err = b.Execute(func() error { ran = true; return nil })
		require.ErrorIs(t, err, ErrOpen)
		require.False(t, ran, "an open breaker does not call")
		require.Contains(t, err.Error(), `"breaker"`)

		c.Advance(10 * time.Second)
		require.Equal(t, Open, b.State(), "still open at exactly OpenTimeout")
		c.Advance(time.Nanosecond)
		require.Equal(t, HalfOpen, b.State())
		d1, err := b.Allow()
		require.NoError(t, err)
		d2, err := b.Allow()
		require.NoError(t, err)
		_, err = b.Allow()
		require.ErrorIs(t, err, ErrTooManyProbes)
		d1(nil)
		require.Equal(t, HalfOpen, b.State(), "one of two probes is not enough")
		d2(nil)
		require.Equal(t, Closed, b.State())
		require.Equal(t, Counts{}, b.Counts())
	})
	t.Run("a failed probe opens again", func(t *testing.T) {
		c := newClock()
		b, err := New(Config{ConsecutiveFailures: 1, OpenTimeout: time.Second, Now: c.Now})
		require.NoError(t, err)
		require.Error(t, b.Execute(fail))
		c.Advance(2 * time.Second)
		require.ErrorIs(t, b.Execute(fail), errDown)
		require.Equal(t, Open, b.State())
		require.ErrorIs(t, b.Execute(ok), ErrOpen)
	})
	t.Run("results from an old generation are ignored", func(t *testing.T) {
		c := newClock()
		b, err := New(Config{ConsecutiveFailures: 1, OpenTimeout: time.Second, Now: c.Now})
		require.NoError(t, err)
		slow, err := b.Allow()
		require.NoError(t, err)
		require.Error(t, b.Execute(fail))
		require.Equal(t, Open, b.State())
		c.Advance(2 * time.Second)
		require.Equal(t, HalfOpen, b.State())
		slow(nil) // started while closed: must not close the half-open breaker
		require.Equal(t, HalfOpen, b.State())
		slow(errDown) // done twice is ignored
		require.Equal(t, HalfOpen, b.State())
	})
	t.Run("counts do not wrap past 2^32", func(t *testing.T) {
		// A broker that runs for months makes billions of calls without a
		// state change. Start the counts just below 2^32 instead of making
		// four billion calls.
		c := newClock()
		b, err := New(Config{ConsecutiveFailures: 3, Now: c.Now})
		require.NoError(t, err)
		b.mu.Lock()
		b.counts = Counts{Requests: math.MaxUint32, Successes: math.MaxUint32, ConsecutiveSuccesses: math.MaxUint32}
		b.mu.Unlock()
		require.NoError(t, b.Execute(ok))
		require.Error(t, b.Execute(fail))
		got := b.Counts()
		require.EqualValues(t, uint64(math.MaxUint32)+2, got.Requests)
		require.EqualValues(t, uint64(math.MaxUint32)+1, got.Successes)
		require.EqualValues(t, 1, got.Failures)
		require.EqualValues(t, 1, got.ConsecutiveFailures)
		require.Equal(t, Closed, b.State())
	})
	t.Run("more than 2^32 half-open probes", func(t *testing.T) {
		if strconv.IntSize < 64 {
			t.Skip("HalfOpenProbes is an int: it cannot hold 2^32 here")
		}
		shift := 32 // not a constant, so that this compiles where int is 32 bits
		c := newClock()
		b, err := New(Config{ConsecutiveFailures: 1, OpenTimeout: time.Second, HalfOpenProbes: 1<<shift + 1, Now: c.Now})
		require.NoError(t, err)
		require.Error(t, b.Execute(fail))
		c.Advance(2 * time.Second)
		require.NoError(t, b.Execute(ok), "a limit above 2^32 must not be cut to its low 32 bits")
		require.Equal(t, HalfOpen, b.State(), "one success of 2^32+1 probes does not close")
	})
	t.Run("a closed breaker allocates nothing per call", func(t *testing.T) {
		b, err := New(Config{})
		require.NoError(t, err)
		require.Zero(t, testing.AllocsPerRun(100, func() { _ = b.Execute(ok) }))
		require.EqualValues(t, 101, b.Counts().Successes, "every call was counted")
	})
	t.Run("a panic counts as a failure", func(t *testing.T) {
		b, err := New(Config{ConsecutiveFailures: 1})
		require.NoError(t, err)
		require.Panics(t, func() { _ = b.Execute(func() error { panic("boom") }) })
		require.Equal(t, Open, b.State())
	})
	t.Run("runtime.Goexit counts as a failure", func(t *testing.T) {
		b, err := New(Config{ConsecutiveFailures: 1})
		require.NoError(t, err)
		exited := make(chan struct{})
		go func() {
			defer close(exited)
			_ = b.Execute(func() error { runtime.Goexit(); return nil })
		}()
		<-exited
		require.Equal(t, Open, b.State(), "a call that never returned is not a success")
	})
	t.Run("same answers as gobreaker", func(t *testing.T) {
		for seed := range uint64(4) {
			differential(t, seed, consecutiveCfg, consecutiveSettings)
		}
	})
	t.Run("bad config", func(t *testing.T) {
		_, err := New(Config{FailureRatio: 2})
		require.ErrorIs(t, err, ErrInvalidConfig)
	})
}

func TestTask2_FailureRatioOverWindow(t *testing.T) {
	newBreaker := func(c *clock) *Breaker {
		cfg := ratioCfg
		cfg.Now = c.Now
		b, err := New(cfg)
		require.NoError(t, err)
		return b
	}
	t.Run("trips at the ratio once there are enough calls", func(t *testing.T) {
		c := newClock()
		b := newBreaker(c)
		for range 5 {
			require.Error(t, b.Execute(fail))
		}
		require.Equal(t, Closed, b.State(), "5 calls are fewer than MinRequests")
		require.NoError(t, b.Execute(ok))
		require.NoError(t, b.Execute(ok))
		require.Error(t, b.Execute(fail), "6 failures of 8 calls")
		require.Equal(t, Open, b.State())
	})
	t.Run("stays closed below the ratio", func(t *testing.T) {
		c := newClock()
		b := newBreaker(c)
		for range 20 {
			require.NoError(t, b.Execute(ok))
			require.NoError(t, b.Execute(ok))
			require.Error(t, b.Execute(fail))
		}
		require.Equal(t, Closed, b.State(), "1 failure in 3 is under 0.5")
	})
	t.Run("old failures roll out of the window", func(t *testing.T) {
		c := newClock()
		b := newBreaker(c)
		for range 5 {
			require.Error(t, b.Execute(fail))
		}
		c.Advance(2 * time.Second)
		require.NoError(t, b.Execute(ok))
		c.Advance(2500 * time.Millisecond) // the 5 failures are now older than 4s
		require.Error(t, b.Execute(fail))
		require.Equal(t, Closed, b.State(), "only 2 calls are left in the window")
		for range 4 {
			require.Error(t, b.Execute(fail))
		}
		require.Equal(t, Open, b.State(), "6 calls in the window, 5 failed")
	})
	t.Run("the window counts past 2^32 without wrapping", func(t *testing.T) {
		// One bucket that has seen almost 2^32 calls, one in 4,096 failed.
		// Start there instead of making four billion calls.
		c := newClock()
		b, err := New(Config{ConsecutiveFailures: -1, FailureRatio: 0.5, MinRequests: 20, Window: 10 * time.Second, Buckets: 1, Now: c.Now})
		require.NoError(t, err)
		b.mu.Lock()
		b.window.buckets[0] = bucket{age: 0, requests: math.MaxUint32, failures: 1 << 20}
		b.mu.Unlock()
		for range 30 {
			require.NoError(t, b.Execute(ok))
		}
		require.Error(t, b.Execute(fail))
		b.mu.Lock()
		requests, failures := b.window.totals(0)
		b.mu.Unlock()
		require.EqualValues(t, uint64(math.MaxUint32)+31, requests)
		require.EqualValues(t, 1<<20+1, failures)
		require.Equal(t, Closed, b.State(), "a wrapped count of 30 calls would make the ratio (2^20+1)/30")
	})
	t.Run("same answers as gobreaker", func(t *testing.T) {
		for seed := range uint64(4) {
			differential(t, 100+seed, ratioCfg, ratioSettings)
		}
	})
}

func TestTask3_CallbacksOutsideTheLock(t *testing.T) {
	t.Run("a callback may call the breaker", func(t *testing.T) {
		c := newClock()
		var b *Breaker
		var got []string
		var err error
		b, err = New(Config{ConsecutiveFailures: 1, OpenTimeout: time.Second, Now: c.Now,
			OnStateChange: func(name string, from, to State) {
				if assert.True(t, b.mu.TryLock(), "OnStateChange ran under the breaker's lock") {
					b.mu.Unlock()
				}
				got = append(got, fmt.Sprintf("%s:%v>%v now %v", name, from, to, b.State()))
				if to == HalfOpen {
					_ = b.Execute(ok) // closes the breaker from inside the callback
				}
			}})
		require.NoError(t, err)
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			_ = b.Execute(fail)
			c.Advance(2 * time.Second)
			_ = b.State()
		}()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Fatal("deadlock: a callback that calls the breaker never returned")
		}
		require.Equal(t, []string{
			"breaker:closed>open now open",
			"breaker:open>half-open now half-open",
			"breaker:half-open>closed now closed",
		}, got, "every change told once, in order")
	})
	t.Run("in order under concurrent callers", func(t *testing.T) {
		var mu sync.Mutex
		var seen []transition
		var b *Breaker
		b, err := New(Config{ConsecutiveFailures: 2, OpenTimeout: time.Nanosecond,
			OnStateChange: func(_ string, from, to State) {
				_ = b.State()
				mu.Lock()
				seen = append(seen, transition{from, to})
				mu.Unlock()
			}})
		require.NoError(t, err)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 300 {
					if (i+g)%3 == 0 {
						_ = b.Execute(ok)
					} else {
						_ = b.Execute(fail)
					}
				}
			}()
		}
		wg.Wait()
		_ = b.State()
		require.NotEmpty(t, seen)
		require.Equal(t, Closed, seen[0].from)
		for i := 1; i < len(seen); i++ {
			require.Equal(t, seen[i-1].to, seen[i].from, "transition %d does not follow %d", i, i-1)
		}
	})
	t.Run("same transitions as gobreaker", func(t *testing.T) {
		mine, theirs := differential(t, 9, consecutiveCfg, consecutiveSettings)
		require.NotEmpty(t, theirs)
		assert.Equal(t, theirs, mine)
	})
}
