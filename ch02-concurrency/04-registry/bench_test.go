package registry

import (
	"fmt"
	"sync/atomic"
	"testing"
)

var impls = []struct {
	name string
	new  func() Registry
}{
	{"mutex", func() Registry { return &MutexRegistry{} }},
	{"rwmutex", func() Registry { return &RWMutexRegistry{} }},
	{"syncmap", func() Registry { return &SyncMapRegistry{} }},
	{"sharded", func() Registry { return &ShardedRegistry{} }},
}

// A mix is a workload: the share of Stores among operations, and whether
// each goroutine has its own keys (disjoint) or all share one set.
var mixes = []struct {
	name     string
	storePct uint64
	disjoint bool
}{
	{"read", 1, false},     // 99 % Load: a registry looked up on every packet
	{"write", 90, false},   // 90 % Store: LastSeen updated on every packet
	{"disjoint", 50, true}, // each goroutine owns its keys: sync.Map's second case
}

const keys = 1024

// BenchmarkRegistry runs every mix on every implementation with
// b.RunParallel: run it with -cpu 1,2 to see what a second core changes.
func BenchmarkRegistry(b *testing.B) {
	ids := make([]string, keys*16)
	for i := range ids {
		ids[i] = fmt.Sprint("meter-", i)
	}
	for _, mix := range mixes {
		for _, impl := range impls {
			b.Run(fmt.Sprintf("mix=%s/impl=%s", mix.name, impl.name), func(b *testing.B) {
				r := impl.new()
				for _, id := range ids {
					r.Store(Device{ID: id})
				}
				var next atomic.Uint64
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					g := next.Add(1)
					base := uint64(0)
					if mix.disjoint {
						base = (g % 16) * keys // up to 16 goroutines get their own keys
					}
					x := g*0x9E3779B97F4A7C15 + 1 // xorshift state, one per goroutine
					for pb.Next() {
						x ^= x << 13
						x ^= x >> 7
						x ^= x << 17
						id := ids[base+x%keys]
						if x%100 < mix.storePct {
							r.Store(Device{ID: id, LastSeen: int64(x)})
						} else {
							r.Load(id)
						}
					}
				})
			})
		}
	}
}
