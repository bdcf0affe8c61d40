package wasm

import (
	"context"
	"runtime"
	"sync"
	"testing"
)

// BenchmarkInstantiate measures one instantiation of a compiled plugin:
// a fresh linear memory plus Go's runtime start-up inside it.
func BenchmarkInstantiate(b *testing.B) {
	p := fx.load(b, "envelope")
	ctx := context.Background()
	var memBytes uint64
	for b.Loop() {
		inst, err := p.Instantiate(ctx)
		if err != nil {
			b.Fatal(err)
		}
		memBytes += uint64(inst.MemorySize())
		_ = inst.Close(ctx)
	}
	b.ReportMetric(float64(memBytes)/float64(b.N), "linear-B/instance")
}

// BenchmarkHandle measures one message through an instance: alloc, write,
// handle, read and copy.
func BenchmarkHandle(b *testing.B) {
	inst, err := fx.load(b, "envelope").Instantiate(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = inst.Close(context.Background()) }()
	m := msg("sensors/gateway-7/t1", "21.5")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inst.Handle(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPool256 builds a pool of 256 instances (instantiated
// concurrently), sends one message through each of 256 concurrent callers,
// and closes the pool. It reports the time and the Go heap per instance.
func BenchmarkPool256(b *testing.B) {
	const size = 256
	p := fx.load(b, "envelope")
	ctx := context.Background()
	var heap uint64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		pool, err := NewPool(ctx, p, size)
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		for range size {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := pool.Handle(ctx, msg("t", "1")); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		runtime.ReadMemStats(&after)
		heap += after.HeapAlloc - before.HeapAlloc
		if err := pool.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/instance")
	b.ReportMetric(float64(heap)/float64(b.N*size), "heap-B/instance")
}
