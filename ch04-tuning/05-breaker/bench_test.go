package breaker

import (
	"testing"

	"github.com/sony/gobreaker/v2"
)

// The cost a closed breaker adds to every call that passes through it.

func BenchmarkExecuteClosed(b *testing.B) {
	br, _ := New(Config{})
	for b.Loop() {
		_ = br.Execute(ok)
	}
}

func BenchmarkGobreakerClosed(b *testing.B) {
	br := gobreaker.NewCircuitBreaker[any](gobreaker.Settings{})
	for b.Loop() {
		_, _ = br.Execute(func() (any, error) { return nil, nil })
	}
}

func BenchmarkExecuteClosedParallel(b *testing.B) {
	br, _ := New(Config{})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = br.Execute(ok)
		}
	})
}

func BenchmarkGobreakerClosedParallel(b *testing.B) {
	br := gobreaker.NewCircuitBreaker[any](gobreaker.Settings{})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = br.Execute(func() (any, error) { return nil, nil })
		}
	})
}

// BenchmarkExecuteOpen is the cost of a refusal: no call, no allocation.
func BenchmarkExecuteOpen(b *testing.B) {
	br, _ := New(Config{ConsecutiveFailures: 1})
	_ = br.Execute(fail)
	b.ReportAllocs()
	for b.Loop() {
		_ = br.Execute(ok)
	}
}
