package xsync

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// naiveCache is the cache without singleflight: check, and on a miss fetch
// and store. Concurrent misses of one key each fetch.
type naiveCache struct {
	fetch FetchFunc
	mu    sync.Mutex
	m     map[string]DeviceConfig
}

func (c *naiveCache) Get(ctx context.Context, id string) (DeviceConfig, error) {
	c.mu.Lock()
	cfg, ok := c.m[id]
	c.mu.Unlock()
	if ok {
		return cfg, nil
	}
	cfg, err := c.fetch(ctx, id)
	if err != nil {
		return DeviceConfig{}, err
	}
	c.mu.Lock()
	c.m[id] = cfg
	c.mu.Unlock()
	return cfg, nil
}

// BenchmarkColdKey: each op, 32 goroutines ask at the same moment for a
// configuration that is not cached yet, as happens when a gateway with 32
// sessions of one device model restarts. A fetch takes 200 µs. fetches/op
// is how many fetches the config service received.
func BenchmarkColdKey(b *testing.B) {
	const callers = 32
	for _, kind := range []string{"naive", "singleflight"} {
		b.Run(kind, func(b *testing.B) {
			var fetches atomic.Int64
			fetch := func(ctx context.Context, id string) (DeviceConfig, error) {
				fetches.Add(1)
				time.Sleep(200 * time.Microsecond) // a real round trip, not a test's synchronisation
				return DeviceConfig{ID: id}, nil
			}
			var get func(context.Context, string) (DeviceConfig, error)
			if kind == "naive" {
				get = (&naiveCache{fetch: fetch, m: map[string]DeviceConfig{}}).Get
			} else {
				get = NewCache(fetch, CacheConfig{}).Get
			}
			ctx := context.Background()
			for i := 0; b.Loop(); i++ {
				id := fmt.Sprint("model-", i)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for range callers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						if _, err := get(ctx, id); err != nil {
							b.Error(err)
						}
					}()
				}
				close(start)
				wg.Wait()
			}
			b.ReportMetric(float64(fetches.Load())/float64(b.N), "fetches/op")
		})
	}
}
