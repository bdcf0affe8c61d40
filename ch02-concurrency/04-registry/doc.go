// Package registry keeps the table every device server has: device ID to
// what we know about the device. It builds the table four ways behind one
// interface (a map with a Mutex, a map with an RWMutex, a sync.Map and a
// sharded map), uses sync.Once, sync.WaitGroup and atomic counters on the
// way, and benchmarks the four under read-heavy, write-heavy and
// disjoint-key loads.
package registry

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// Device is what the server knows about one connected device.
type Device struct {
	ID       string
	Addr     string // remote address of its connection
	LastSeen int64  // Unix nanoseconds of its last packet
}

// Registry maps device IDs to devices. Every implementation in this package
// is safe for concurrent use, and its zero value is an empty registry ready
// to use.
type Registry interface {
	// Load returns the device stored under id, and whether there was one.
	Load(id string) (Device, bool)
	// Store adds d under d.ID, replacing any device stored under that ID.
	Store(d Device)
	// Delete removes the device stored under id, if any.
	Delete(id string)
	// Len returns the number of devices stored.
	Len() int
}

// The four implementations, checked at compile time.
var (
	_ Registry = (*MutexRegistry)(nil)
	_ Registry = (*RWMutexRegistry)(nil)
	_ Registry = (*SyncMapRegistry)(nil)
	_ Registry = (*ShardedRegistry)(nil)
)

// shardCount is the number of shards of a ShardedRegistry: a power of two,
// comfortably more than the cores of the machines this runs on.
const shardCount = 64

// MutexRegistry is a map guarded by one Mutex: every operation, read or
// write, takes the same lock.
type MutexRegistry struct {
	mu sync.Mutex
	m  map[string]Device // guarded by mu; made on first Store
}

// RWMutexRegistry is a map guarded by an RWMutex: readers share the lock,
// writers take it alone.
type RWMutexRegistry struct {
	mu sync.RWMutex
	m  map[string]Device // guarded by mu; made on first Store
}

// SyncMapRegistry is a sync.Map plus an atomic count, since sync.Map
// cannot tell its length.
type SyncMapRegistry struct {
	m sync.Map     // string -> Device
	n atomic.Int64 // number of keys in m
}

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
