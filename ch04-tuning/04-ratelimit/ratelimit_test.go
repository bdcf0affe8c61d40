package ratelimit

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/time/rate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is where every schedule starts: a wall-clock time with no monotonic
// reading, so x/time/rate and our limiters see the same nanoseconds.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// event is one step of a schedule: at this time, ask for n tokens.
type event struct {
	at time.Time
	n  int
}

// schedule returns a reproducible schedule of events for a limiter of
// rate r and burst b: gaps drawn around the emission interval, in whole
// nanoseconds, and sometimes more tokens than the burst.
func schedule(seed uint64, r Limit, b, count int) []event {
	rng := rand.New(rand.NewPCG(seed, 42))
	interval := time.Duration(1e9 / float64(r))
	at := t0
	evs := make([]event, count)
	for i := range evs {
		switch rng.IntN(10) {
		case 0: // a burst: same instant as the previous event
		case 1: // a pause long enough to refill
			at = at.Add(time.Duration(b+1) * interval)
		default:
			at = at.Add(time.Duration(rng.Int64N(int64(interval) * 2)))
		}
		evs[i] = event{at: at, n: 1 + rng.IntN(b+1)}
	}
	return evs
}

type diffCase struct {
	r Limit
	b int
}

var diffCases = []diffCase{{1, 1}, {10, 1}, {10, 3}, {100, 10}, {1000, 5}, {5, 2}, {2500, 20}, {50, 7}}

// replay runs the schedule through x/time/rate and through allow, and
// fails at the first event where they disagree.
func replay(t *testing.T, c diffCase, seed uint64, allow func(at time.Time, n int) bool) {
	t.Helper()
	ref := rate.NewLimiter(rate.Limit(c.r), c.b)
	allowed, refused := 0, 0
	for i, ev := range schedule(seed, c.r, c.b, 4000) {
		want := ref.AllowN(ev.at, ev.n)
		got := allow(ev.at, ev.n)
		require.Equalf(t, want, got, "event %d: AllowN(t0+%v, %d): x/time/rate says %v", i, ev.at.Sub(t0), ev.n, want)
		if got {
			allowed++
		} else {
			refused++
		}
	}
	// A schedule that only allows (or only refuses) proves nothing.
	require.Positive(t, allowed)
	require.Positive(t, refused)
}

func TestTask1_BucketMatchesXTimeRate(t *testing.T) {
	for _, c := range diffCases {
		t.Run(fmt.Sprintf("r=%v,b=%d", float64(c.r), c.b), func(t *testing.T) {
			for seed := range uint64(3) {
				b, err := NewBucket(c.r, c.b)
				require.NoError(t, err)
				replay(t, c, seed, b.AllowN)
			}
		})
	}
	t.Run("burst then refill", func(t *testing.T) {
		b, err := NewBucket(2, 3) // 3 tokens, one back every 500ms
		require.NoError(t, err)
		for range 3 {
			assert.True(t, b.Allow(t0))
		}
		assert.False(t, b.Allow(t0))
		assert.False(t, b.Allow(t0.Add(499*time.Millisecond)))
		assert.True(t, b.Allow(t0.Add(500*time.Millisecond)))
		assert.False(t, b.AllowN(t0.Add(time.Hour), 4), "more than the burst never fits")
		assert.True(t, b.AllowN(t0.Add(time.Hour), 3), "a long pause refills only up to the burst")
		assert.False(t, b.Allow(t0.Add(time.Hour)))
		assert.False(t, b.Allow(t0), "a time before the last one refills nothing")
	})
	t.Run("invalid", func(t *testing.T) {
		_, err := NewBucket(0, 1)
		require.ErrorIs(t, err, ErrInvalid)
		_, err = NewBucket(1, 0)
		require.ErrorIs(t, err, ErrInvalid)
	})
}

func TestTask2_GCRAMatchesXTimeRate(t *testing.T) {
	for _, c := range diffCases {
		t.Run(fmt.Sprintf("r=%v,b=%d", float64(c.r), c.b), func(t *testing.T) {
			g, err := NewGCRA(c.r, c.b)
			require.NoError(t, err)
			for seed := range uint64(3) {
				var tat atomic.Int64
				replay(t, c, seed, func(at time.Time, n int) bool { return g.AllowN(&tat, at, n) })
			}
		})
	}
	t.Run("refused events leave the state alone", func(t *testing.T) {
		g, err := NewGCRA(10, 2)
		require.NoError(t, err)
		var tat atomic.Int64
		require.True(t, g.AllowN(&tat, t0, 2))
		before := tat.Load()
		require.Equal(t, t0.Add(200*time.Millisecond).UnixNano(), before, "two tokens move the TAT two intervals past now")
		require.False(t, g.Allow(&tat, t0.Add(50*time.Millisecond)))
		require.Equal(t, before, tat.Load())
	})
	t.Run("concurrent callers share one word exactly", func(t *testing.T) {
		g, err := NewGCRA(10, 10)
		require.NoError(t, err)
		var tat atomic.Int64
		count := func(at time.Time) int64 {
			var allowed atomic.Int64
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 50 {
						if g.Allow(&tat, at) {
							allowed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			return allowed.Load()
		}
		require.EqualValues(t, 10, count(t0), "400 tries at one instant: exactly the burst")
		require.EqualValues(t, 3, count(t0.Add(300*time.Millisecond)), "300ms later: exactly 3 tokens came back")
	})
	t.Run("invalid", func(t *testing.T) {
		for _, c := range []struct {
			r Limit
			b int
		}{{0, 1}, {-1, 1}, {1, 0}, {1e-9, 10}} {
			_, err := NewGCRA(c.r, c.b)
			require.ErrorIs(t, err, ErrInvalid, "%v/%d", float64(c.r), c.b)
		}
	})
	t.Run("inf allows everything", func(t *testing.T) {
		g, err := NewGCRA(Inf, 1)
		require.NoError(t, err)
		var tat atomic.Int64
		require.True(t, g.AllowN(&tat, t0, 1000))
		// Callers on several goroutines read the clock in no particular
		// order: an earlier now after a later one must still pass.
		require.True(t, g.Allow(&tat, t0.Add(time.Second)))
		require.True(t, g.Allow(&tat, t0))
	})
}

func TestTask3_TableHoldsOneWordPerKey(t *testing.T) {
	t.Run("each key has its own bucket", func(t *testing.T) {
		tab, err := NewTable(Config{Limit: 1, Burst: 2, Capacity: 1 << 14})
		require.NoError(t, err)
		for i := range 1000 {
			k := fmt.Sprintf("device-%d", i)
			require.True(t, tab.Allow(k, t0), k)
			require.True(t, tab.Allow(k, t0), k)
			require.False(t, tab.Allow(k, t0), k)
		}
		require.Zero(t, tab.Refused())
	})
	t.Run("one key matches x/time/rate", func(t *testing.T) {
		c := diffCase{100, 10}
		tab, err := NewTable(Config{Limit: c.r, Burst: c.b, Capacity: 8})
		require.NoError(t, err)
		replay(t, c, 7, func(at time.Time, n int) bool { return tab.AllowN("sensor", at, n) })
	})
	t.Run("idle slots are reused, active ones kept", func(t *testing.T) {
		tab, err := NewTable(Config{Limit: 1, Burst: 1, Capacity: SetSize}) // one set
		require.NoError(t, err)
		for i := range SetSize {
			require.True(t, tab.Allow(fmt.Sprint("a", i), t0))
		}
		require.False(t, tab.Allow("newcomer", t0), "every slot is active")
		require.EqualValues(t, 1, tab.Refused())
		half := t0.Add(500 * time.Millisecond)
		require.False(t, tab.Allow("a0", half), "a0 kept its debt")
		require.False(t, tab.Allow("newcomer", half))
		later := t0.Add(time.Second) // every bucket is full again: all idle
		for i := range SetSize {
			require.True(t, tab.Allow(fmt.Sprint("b", i), later), "b%d takes an idle slot", i)
		}
		require.False(t, tab.Allow("b0", later), "b0 now has a slot and a debt")
		require.EqualValues(t, 2, tab.Refused())
	})
	t.Run("concurrent callers", func(t *testing.T) {
		tab, err := NewTable(Config{Limit: 1, Burst: 5, Capacity: 1024})
		require.NoError(t, err)
		keys := make([]string, 100)
		for i := range keys {
			keys[i] = fmt.Sprint("k", i)
		}
		var allowed [100]atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					for i, k := range keys {
						if tab.Allow(k, t0) {
							allowed[i].Add(1)
						}
					}
				}
			}()
		}
		wg.Wait()
		for i := range allowed {
			require.EqualValues(t, 5, allowed[i].Load(), keys[i])
		}
	})
	t.Run("16 bytes per key, nothing allocated per event", func(t *testing.T) {
		require.EqualValues(t, 16, unsafe.Sizeof(slot{}))
		const n = 100_000
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprint("client-", i)
		}
		base := liveHeap()
		tab, err := NewTable(Config{Limit: 1, Burst: 1, Capacity: n})
		require.NoError(t, err)
		empty := liveHeap()
		perSlot := float64(empty-base) / float64(tab.Cap())
		t.Logf("table of %d slots: %.2f bytes per slot", tab.Cap(), perSlot)
		require.LessOrEqual(t, perSlot, 16.5)

		held := 0
		for _, k := range keys {
			if tab.Allow(k, t0) {
				held++
			}
		}
		full := liveHeap()
		t.Logf("%d of %d keys held; heap grew %d bytes while filling", held, n, int64(full)-int64(empty))
		require.Greater(t, held, n*3/4, "an 8-way table at load 1 holds most keys")
		require.LessOrEqual(t, int64(full)-int64(empty), int64(n/10), "filling must not allocate per key")
		require.Zero(t, testing.AllocsPerRun(100, func() { tab.Allow(keys[7], t0) }))
		runtime.KeepAlive(tab)
	})
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
