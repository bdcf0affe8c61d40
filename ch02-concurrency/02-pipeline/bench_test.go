package pipeline

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// work stands for what the consumer does with an event: about a
// microsecond of arithmetic on the reference machine.
func work(v uint64) uint64 {
	for range 400 {
		v ^= v << 13
		v ^= v >> 7
		v ^= v << 17
	}
	return v
}

var sink uint64

// BenchmarkSlowConsumer sends b.N events from one device as fast as it can
// to a consumer that spends about a microsecond per event. ns/op is what a
// Send costs the device; dropped/op is the share of events lost.
func BenchmarkSlowConsumer(b *testing.B) {
	for _, policy := range []Policy{Block, DropNewest, DropOldest} {
		for _, buffer := range []int{10, 1000} {
			b.Run(fmt.Sprintf("%v/buffer=%d", policy, buffer), func(b *testing.B) {
				p, err := New(Config{Buffer: buffer, Policy: policy})
				if err != nil {
					b.Fatal(err)
				}
				src, err := p.AddSource("meter")
				if err != nil {
					b.Fatal(err)
				}
				consumed := make(chan uint64)
				go func() {
					var acc uint64
					for ev := range p.Out() {
						acc += work(ev.Seq)
					}
					consumed <- acc
				}()
				ctx := context.Background()
				b.ResetTimer()
				for i := range b.N {
					if err := src.Send(ctx, Event{Seq: uint64(i)}); err != nil && !errors.Is(err, ErrDropped) {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if err := p.Close(ctx); err != nil {
					b.Fatal(err)
				}
				sink += <-consumed
				st := p.Stats()
				b.ReportMetric(float64(st.DroppedNewest+st.DroppedOldest)/float64(b.N), "dropped/op")
			})
		}
	}
}
