//go:build floodgate.solution

package registry

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

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
