//go:build floodgate.solution

package registry

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// MutexRegistry is a map guarded by one Mutex: every operation, read or
// write, takes the same lock.
type MutexRegistry struct {
	mu sync.Mutex
	m  map[string]Device // guarded by mu; made on first Store
}

// Load returns the device stored under id, and whether there was one.
func (r *MutexRegistry) Load(id string) (Device, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.m[id] // reading a nil map is fine
	return d, ok
}

// Store adds d under d.ID, replacing any device stored under that ID.
func (r *MutexRegistry) Store(d Device) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[string]Device)
	}
	r.m[d.ID] = d
}

// Delete removes the device stored under id, if any.
func (r *MutexRegistry) Delete(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, id)
}

// Len returns the number of devices stored.
func (r *MutexRegistry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

// RWMutexRegistry is a map guarded by an RWMutex: readers share the lock,
// writers take it alone.
type RWMutexRegistry struct {
	mu sync.RWMutex
	m  map[string]Device // guarded by mu; made on first Store
}

// Load returns the device stored under id, and whether there was one.
func (r *RWMutexRegistry) Load(id string) (Device, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.m[id]
	return d, ok
}

// Store adds d under d.ID, replacing any device stored under that ID.
func (r *RWMutexRegistry) Store(d Device) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[string]Device)
	}
	r.m[d.ID] = d
}

// Delete removes the device stored under id, if any.
func (r *RWMutexRegistry) Delete(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, id)
}

// Len returns the number of devices stored.
func (r *RWMutexRegistry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.m)
}

// SyncMapRegistry is a sync.Map plus an atomic count, since sync.Map
// cannot tell its length.
type SyncMapRegistry struct {
	m sync.Map     // string -> Device
	n atomic.Int64 // number of keys in m
}

// Load returns the device stored under id, and whether there was one.
func (r *SyncMapRegistry) Load(id string) (Device, bool) {
	v, ok := r.m.Load(id)
	if !ok {
		return Device{}, false
	}
	return v.(Device), true
}

// Store adds d under d.ID, replacing any device stored under that ID.
func (r *SyncMapRegistry) Store(d Device) {
	// Swap says whether the key was there: count only new keys. Load then
	// Store would race with another Store of the same new key.
	if _, loaded := r.m.Swap(d.ID, d); !loaded {
		r.n.Add(1)
	}
}

// Delete removes the device stored under id, if any.
func (r *SyncMapRegistry) Delete(id string) {
	if _, loaded := r.m.LoadAndDelete(id); loaded {
		r.n.Add(-1)
	}
}

// Len returns the number of devices stored.
func (r *SyncMapRegistry) Len() int { return int(r.n.Load()) }

// ShardedRegistry spreads its keys over shardCount maps, each with its own
// RWMutex, so that operations on different shards never wait for each
// other.
type ShardedRegistry struct {
	once   sync.Once
	seed   maphash.Seed // set once, by once, before any shard is used
	shards [shardCount]shard
}

// A shard's hot fields take 32 bytes (a 24-byte RWMutex and a map
// pointer). The array is not aligned to a 64-byte cache line, so the padding
// makes each shard 128 bytes long: two shards' hot fields are then at least
// 96 bytes apart and never share a line.
type shard struct {
	mu sync.RWMutex
	m  map[string]Device // guarded by mu; made on first Store
	_  [96]byte          // see above
}

func (r *ShardedRegistry) shard(id string) *shard {
	r.once.Do(func() { r.seed = maphash.MakeSeed() })
	return &r.shards[maphash.String(r.seed, id)%shardCount]
}

// Load returns the device stored under id, and whether there was one.
func (r *ShardedRegistry) Load(id string) (Device, bool) {
	s := r.shard(id)
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.m[id]
	return d, ok
}

// Store adds d under d.ID, replacing any device stored under that ID.
func (r *ShardedRegistry) Store(d Device) {
	s := r.shard(d.ID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]Device)
	}
	s.m[d.ID] = d
}

// Delete removes the device stored under id, if any.
func (r *ShardedRegistry) Delete(id string) {
	s := r.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// Len adds up the shards one at a time; under concurrent writes the sum is
// not a snapshot of one instant.
func (r *ShardedRegistry) Len() int {
	n := 0
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// CountOnline looks up every id in r using workers goroutines (at least
// one) and returns how many were found and how many were missing. It
// returns when every lookup is done.
func CountOnline(r Registry, ids []string, workers int) (found, missing uint64) {
	workers = max(workers, 1)
	var nFound, nMissing atomic.Uint64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1) // before go: Wait must not run ahead of this worker
		go func() {
			defer wg.Done()
			for i := w; i < len(ids); i += workers { // worker w takes every workers-th id
				if _, ok := r.Load(ids[i]); ok {
					nFound.Add(1)
				} else {
					nMissing.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return nFound.Load(), nMissing.Load()
}
