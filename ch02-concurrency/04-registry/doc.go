// Package registry keeps the table every device server has: device ID to
// what we know about the device. It builds the table four ways behind one
// interface (a map with a Mutex, a map with an RWMutex, a sync.Map and a
// sharded map), uses sync.Once, sync.WaitGroup and atomic counters on the
// way, and benchmarks the four under read-heavy, write-heavy and
// disjoint-key loads.
package registry

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
