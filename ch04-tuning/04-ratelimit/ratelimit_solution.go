//go:build floodgate.solution

package ratelimit

import (
	"sync/atomic"
	"time"
)

// AllowN reports whether n events may happen at now, and if so takes n
// tokens. Refused events change nothing. n <= 0 is always allowed.
func (b *Bucket) AllowN(now time.Time, n int) bool {
	if n <= 0 {
		return true
	}
	if b.limit == Inf {
		return b.burst > 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.burst < 1 || n > b.burst {
		return false
	}
	// Refill for the time since last, but never count backwards: a now
	// before last refills nothing.
	last := b.last
	if now.Before(last) {
		last = now
	}
	tokens := b.tokens + now.Sub(last).Seconds()*float64(b.limit)
	if tokens > float64(b.burst) {
		tokens = float64(b.burst)
	}
	tokens -= float64(n)
	// Time is counted in whole nanoseconds: a shortfall worth less than one
	// nanosecond of refill is no shortfall.
	if tokens < 0 && time.Duration(-tokens/float64(b.limit)*1e9) > 0 {
		return false
	}
	b.tokens, b.last = tokens, now
	return true
}

// AllowN reports whether n events may happen at now for the key whose
// theoretical arrival time is *tat, and if so moves *tat on by n emission
// intervals with CompareAndSwap. Refused events change nothing. n <= 0 is
// always allowed.
func (g GCRA) AllowN(tat *atomic.Int64, now time.Time, n int) bool {
	if n <= 0 || g.emission == 0 {
		return true // Inf: every event, whatever the TAT or the clock says
	}
	if int64(n) > g.burst {
		return false
	}
	t := now.UnixNano()
	cost := int64(n) * g.emission
	limit := t + g.burst*g.emission // the TAT may run at most burst intervals ahead
	for {
		old := tat.Load()
		next := max(old, t) + cost
		if next > limit {
			return false
		}
		if tat.CompareAndSwap(old, next) {
			return true
		}
	}
}

// AllowN reports whether n events may happen at now for key.
func (t *Table) AllowN(key string, now time.Time, n int) bool {
	h, set, mu := t.locate(key)

	// Fast path: the key has a slot. The read lock keeps the slot's key
	// fixed while the GCRA swaps its TAT; other readers run alongside.
	mu.RLock()
	for i := range set {
		if set[i].key == h {
			ok := t.gcra.AllowN(&set[i].tat, now, n)
			mu.RUnlock()
			return ok
		}
	}
	mu.RUnlock()

	// Slow path: give the key a slot. Look again, since another goroutine
	// may have given it one between the two locks.
	mu.Lock()
	defer mu.Unlock()
	free := -1
	ns := now.UnixNano()
	for i := range set {
		switch {
		case set[i].key == h:
			return t.gcra.AllowN(&set[i].tat, now, n)
		case free < 0 && (set[i].key == 0 || set[i].tat.Load() <= ns):
			free = i // empty, or idle: its bucket is full again
		}
	}
	if free < 0 {
		t.refused.Add(1)
		return false
	}
	set[free].key = h
	set[free].tat.Store(0) // a full bucket, like every new key
	return t.gcra.AllowN(&set[free].tat, now, n)
}
