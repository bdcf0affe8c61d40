package load

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: each power of two is split into
// 2^subBits buckets, so a recorded value is off by less than 1/128 (0.8%).
const subBits = 7

const histBuckets = (64 - subBits) << subBits

// Histogram counts durations in log-linear buckets (the HdrHistogram idea,
// in 58 KiB and no dependency). The zero value is empty and ready. It is
// not safe for concurrent use: each event loop owns one, and they are merged
// after the loops stop.
type Histogram struct {
	counts []uint64 // allocated on first Record
	n      uint64
	sum    float64 // nanoseconds
	max    uint64
}

func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1
	return (e+1)<<subBits + int(v>>uint(e)) - 1<<subBits
}

// bucketMid returns a value near the middle of bucket i.
func bucketMid(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	e := i>>subBits - 1
	m := uint64(i&(1<<subBits-1) + 1<<subBits)
	return m<<uint(e) + (uint64(1)<<uint(e))/2
}

// Record adds one duration; a negative one counts as zero.
func (h *Histogram) Record(d time.Duration) {
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
	h.max = max(h.max, v)
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Quantile returns the value at quantile q in [0, 1] (0 if empty). It
// never returns more than the largest recorded value.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketMid(i), h.max))
		}
	}
	return time.Duration(h.max)
}

// Summary returns the usual percentiles in microseconds.
func (h *Histogram) Summary() *Percentiles {
	if h.n == 0 {
		return nil
	}
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	return &Percentiles{
		Count:  h.n,
		MeanUS: h.sum / float64(h.n) / 1e3,
		P50US:  us(h.Quantile(0.50)),
		P90US:  us(h.Quantile(0.90)),
		P99US:  us(h.Quantile(0.99)),
		P999US: us(h.Quantile(0.999)),
		MaxUS:  us(time.Duration(h.max)),
	}
}

// Percentiles is a latency summary, in microseconds.
type Percentiles struct {
	Count  uint64  `json:"count"`
	MeanUS float64 `json:"mean_us"`
	P50US  float64 `json:"p50_us"`
	P90US  float64 `json:"p90_us"`
	P99US  float64 `json:"p99_us"`
	P999US float64 `json:"p999_us"`
	MaxUS  float64 `json:"max_us"`
}

// Quantiles at which a run's latency curve is drawn.
var curveQuantiles = []float64{0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1}

// QuantilePoint is one point of a latency curve.
type QuantilePoint struct {
	Q  float64 `json:"q"`
	US float64 `json:"us"`
}

// Curve returns the latency at each of curveQuantiles, in microseconds.
func (h *Histogram) Curve() []QuantilePoint {
	if h.n == 0 {
		return nil
	}
	out := make([]QuantilePoint, len(curveQuantiles))
	for i, q := range curveQuantiles {
		out[i] = QuantilePoint{Q: q, US: float64(h.Quantile(q)) / 1e3}
	}
	return out
}
