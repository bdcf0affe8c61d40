package registry

import (
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

func dev(id string, seen int64) Device {
	return Device{ID: id, Addr: "127.0.0.1:" + id, LastSeen: seen}
}

// conformance checks the Registry contract on a fresh zero value from
// newReg: first one goroutine, then many at once (run it with -race).
func conformance(t *testing.T, newReg func() Registry) {
	t.Run("sequential", func(t *testing.T) {
		r := newReg()
		assert.Zero(t, r.Len(), "the zero value is empty")
		_, ok := r.Load("meter-1")
		assert.False(t, ok)

		r.Store(dev("meter-1", 1))
		r.Store(dev("meter-2", 2))
		got, ok := r.Load("meter-1")
		require.True(t, ok, "Load finds what Store stored")
		assert.Equal(t, dev("meter-1", 1), got)
		assert.Equal(t, 2, r.Len())

		r.Store(dev("meter-1", 3)) // replace, not add
		got, _ = r.Load("meter-1")
		assert.EqualValues(t, 3, got.LastSeen)
		assert.Equal(t, 2, r.Len(), "storing an existing ID replaces it")

		r.Delete("meter-1")
		r.Delete("no-such-device")
		_, ok = r.Load("meter-1")
		assert.False(t, ok)
		assert.Equal(t, 1, r.Len())
	})
	t.Run("concurrent", func(t *testing.T) {
		r := newReg()
		const workers, each = 8, 200
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					r.Store(dev(fmt.Sprintf("w%d-%d", w, i), int64(i)))
					r.Load("shared")
				}
				for i := 0; i < each; i += 2 {
					r.Delete(fmt.Sprintf("w%d-%d", w, i))
				}
			}()
		}
		wg.Wait()
		assert.Equal(t, workers*each/2, r.Len())
		for w := range workers {
			for i := range each {
				_, ok := r.Load(fmt.Sprintf("w%d-%d", w, i))
				require.Equal(t, i%2 == 1, ok, "device w%d-%d", w, i)
			}
		}
	})
}

func TestTask1_MutexRegistry(t *testing.T) {
	conformance(t, func() Registry { return &MutexRegistry{} })
}

func TestTask2_RWMutexRegistry(t *testing.T) {
	conformance(t, func() Registry { return &RWMutexRegistry{} })
}

func TestTask3_SyncMapRegistry(t *testing.T) {
	conformance(t, func() Registry { return &SyncMapRegistry{} })
	t.Run("Len counts each key once under racing stores", func(t *testing.T) {
		var r SyncMapRegistry
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 100 {
					r.Store(dev(fmt.Sprint("same-", i), 0)) // all goroutines, same keys
				}
			}()
		}
		wg.Wait()
		assert.Equal(t, 100, r.Len())
	})
}

func TestTask4_ShardedRegistry(t *testing.T) {
	conformance(t, func() Registry { return &ShardedRegistry{} })
	t.Run("keys spread over the shards", func(t *testing.T) {
		var r ShardedRegistry
		for i := range 2000 {
			r.Store(dev(fmt.Sprint("meter-", i), 0))
		}
		used := 0
		for i := range r.shards {
			if len(r.shards[i].m) > 0 {
				used++
			}
		}
		assert.Equal(t, shardCount, used, "2000 keys should reach every one of %d shards", shardCount)
	})
	t.Run("first use from many goroutines", func(t *testing.T) {
		var r ShardedRegistry // nothing initialised yet
		var wg sync.WaitGroup
		var lost atomic.Int64
		for g := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprint("first-", g)
				r.Store(dev(id, 0))
				if _, ok := r.Load(id); !ok {
					lost.Add(1)
				}
			}()
		}
		wg.Wait()
		assert.Zero(t, lost.Load(), "a key stored is found again: one seed for all")
		assert.Equal(t, 16, r.Len())
	})
}

// fakeRegistry is a read-only map that records how CountOnline calls it.
// Its first `barrier` Loads wait until `barrier` callers are inside at the
// same time, which only happens if that many goroutines are working.
type fakeRegistry struct {
	devices map[string]Device
	barrier int

	loads   atomic.Int64
	arrived atomic.Int64
	release chan struct{}
	met     atomic.Bool
}

func (f *fakeRegistry) Load(id string) (Device, bool) {
	if n := f.loads.Add(1); n <= int64(f.barrier) {
		if f.arrived.Add(1) == int64(f.barrier) {
			f.met.Store(true)
			close(f.release)
		}
		select {
		case <-f.release:
		case <-time.After(time.Hour): // fake time: instant if nobody else comes
		}
	}
	d, ok := f.devices[id]
	return d, ok
}
func (f *fakeRegistry) Store(Device)  {}
func (f *fakeRegistry) Delete(string) {}
func (f *fakeRegistry) Len() int      { return len(f.devices) }
func newFake(online, barrier int) *fakeRegistry {
	f := &fakeRegistry{devices: map[string]Device{}, barrier: barrier, release: make(chan struct{})}
	for i := range online {
		f.devices[fmt.Sprint("meter-", i)] = dev(fmt.Sprint("meter-", i), 0)
	}
	return f
}

func TestTask5_CountOnline(t *testing.T) {
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprint("meter-", i)
	}
	for _, workers := range []int{1, 3, 8} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(600, workers)
				found, missing := CountOnline(f, ids, workers)
				assert.EqualValues(t, 600, found)
				assert.EqualValues(t, 400, missing)
				assert.EqualValues(t, len(ids), f.loads.Load(), "each id looked up exactly once")
				assert.True(t, f.met.Load(), "%d lookups should run at the same time", workers)
			})
		})
	}
	t.Run("workers below one means one", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			found, missing := CountOnline(newFake(10, 0), ids[:20], 0)
			assert.EqualValues(t, 10, found)
			assert.EqualValues(t, 10, missing)
		})
	})
}
