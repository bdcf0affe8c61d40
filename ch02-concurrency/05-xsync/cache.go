package xsync

import (
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// CacheConfig configures a Cache. The zero value works.
type CacheConfig struct {
	// Timeout bounds one fetch, which runs on behalf of every caller
	// waiting for it and so does not end when one of them gives up.
	// Zero means 5 seconds.
	Timeout time.Duration
}

// Cache holds device configurations, fetching each on its first Get. It is
// safe for concurrent use. Failed fetches are not cached.
type Cache struct {
	fetch   FetchFunc
	timeout time.Duration

	group singleflight.Group // one fetch in flight per device ID

	mu sync.Mutex              // guards m
	m  map[string]DeviceConfig // fetched configurations
}

// NewCache returns an empty cache that fills itself with fetch.
func NewCache(fetch FetchFunc, cfg CacheConfig) *Cache {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	return &Cache{fetch: fetch, timeout: cfg.Timeout, m: make(map[string]DeviceConfig)}
}

// cached returns the configuration stored for id, if any.
func (c *Cache) cached(id string) (DeviceConfig, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg, ok := c.m[id]
	return cfg, ok
}

// put stores cfg for id.
func (c *Cache) put(id string, cfg DeviceConfig) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[id] = cfg
}
