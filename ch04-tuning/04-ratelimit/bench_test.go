package ratelimit

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// The benchmarks pass a time that moves on 1µs per event, at a rate of
// 1e6/s with a large burst, so about every event is allowed and each one
// does the full update.

func BenchmarkXTimeRate(b *testing.B) {
	l := rate.NewLimiter(1e6, 1000)
	for i := 0; b.Loop(); i++ {
		l.AllowN(t0.Add(time.Duration(i)*time.Microsecond), 1)
	}
}

func BenchmarkBucket(b *testing.B) {
	l, _ := NewBucket(1e6, 1000)
	for i := 0; b.Loop(); i++ {
		l.AllowN(t0.Add(time.Duration(i)*time.Microsecond), 1)
	}
}

func BenchmarkGCRA(b *testing.B) {
	g, _ := NewGCRA(1e6, 1000)
	var tat atomic.Int64
	for i := 0; b.Loop(); i++ {
		g.AllowN(&tat, t0.Add(time.Duration(i)*time.Microsecond), 1)
	}
}

// The parallel benchmarks put every goroutine on one hot key.

func BenchmarkXTimeRateParallel(b *testing.B) {
	l := rate.NewLimiter(1e6, 1000)
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			l.AllowN(t0.Add(time.Duration(i)*time.Microsecond), 1)
		}
	})
}

func BenchmarkGCRAParallel(b *testing.B) {
	g, _ := NewGCRA(1e6, 1000)
	var tat atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			g.AllowN(&tat, t0.Add(time.Duration(i)*time.Microsecond), 1)
		}
	})
}

// BenchmarkTableParallel spreads events over 10,000 keys.
func BenchmarkTableParallel(b *testing.B) {
	tab, _ := NewTable(Config{Limit: 1e6, Burst: 1000, Capacity: 1 << 16})
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = fmt.Sprint("device-", i)
	}
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			tab.Allow(keys[i%len(keys)], t0.Add(time.Duration(i)*time.Microsecond))
		}
	})
}
