//go:build !floodgate.solution

package ratelimit

import (
	"sync/atomic"
	"time"
)

// AllowN reports whether n events may happen at now, and if so takes n
// tokens. Refused events change nothing. n <= 0 is always allowed.
func (b *Bucket) AllowN(now time.Time, n int) bool {
	// TODO: Task 1. Under b.mu: bring the tokens up to date for the time
	// since b.last (never more than burst, never less for a now before
	// b.last), then take n tokens if there are enough.
	return false
}

// AllowN reports whether n events may happen at now for the key whose
// theoretical arrival time is *tat, and if so moves *tat on by n emission
// intervals with CompareAndSwap. Refused events change nothing. n <= 0 is
// always allowed.
func (g GCRA) AllowN(tat *atomic.Int64, now time.Time, n int) bool {
	// TODO: Task 2. Load the TAT, compute the new one from max(TAT, now),
	// refuse if it runs more than burst intervals ahead of now, and retry
	// when CompareAndSwap loses a race.
	return false
}

// AllowN reports whether n events may happen at now for key.
func (t *Table) AllowN(key string, now time.Time, n int) bool {
	// TODO: Task 3. Find key's slot under the read lock and run the GCRA on
	// it. If it has none, take the write lock and give it an empty or idle
	// slot of its set (or count a refusal).
	return false
}
