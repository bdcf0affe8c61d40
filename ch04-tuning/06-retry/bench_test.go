package retry

import (
	"math/rand/v2"
	"testing"
	"time"
)

// herd simulates 1,000 clients that all fail at time 0 and retry 5 times
// against a downstream that stays down, and returns the most retries that
// land in any one 10 ms slot (the first attempts all land at 0 whatever
// the policy, so they are not counted). No time passes: it adds up the
// waits.
func herd(b Backoff) int {
	slots := map[time.Duration]int{}
	peak := 0
	for range 1000 {
		var at time.Duration
		for attempt := range 5 {
			at += b.Delay(attempt)
			s := at / (10 * time.Millisecond)
			slots[s]++
			peak = max(peak, slots[s])
		}
	}
	return peak
}

// BenchmarkHerd reports the peak load a herd of retrying clients puts on
// the downstream (retries per 10 ms) with no jitter and with full jitter.
func BenchmarkHerd(b *testing.B) {
	cases := []struct {
		name   string
		jitter func(n int64) int64
	}{
		{"no-jitter", func(n int64) int64 { return n - 1 }},
		{"full-jitter", rand.New(rand.NewPCG(1, 1)).Int64N},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			peak := 0
			for b.Loop() {
				peak = herd(Backoff{Base: 100 * time.Millisecond, Jitter: c.jitter})
			}
			b.ReportMetric(float64(peak), "peak-retries/10ms")
		})
	}
}
