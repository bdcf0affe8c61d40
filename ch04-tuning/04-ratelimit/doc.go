// Package ratelimit holds back a flood of messages per client with three
// rate limiters that take time as a parameter and start no goroutine.
//
// Bucket is the classic token bucket, kept as a float64 count of tokens and
// the time they were last counted, behind a mutex; it makes the same
// decisions as golang.org/x/time/rate for the same schedule. GCRA (the
// generic cell rate algorithm) keeps the same bucket in a single int64, the
// theoretical arrival time, and updates it with atomic CompareAndSwap, so a
// hot key is never behind a lock. Table holds one GCRA word per client in a
// fixed array of 16-byte slots: a client whose bucket has refilled is idle,
// its slot carries no information, and a new client may take it.
//
// Every method takes the current time from the caller (now time.Time), so
// tests replay exact schedules and nothing ticks in the background.
package ratelimit

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Limit is a rate of events per second. Inf allows every event.
type Limit float64

// Inf is the infinite rate: every event is allowed, whatever the burst.
const Inf = Limit(math.MaxFloat64)

// ErrInvalid is returned by the constructors for a rate or burst that no
// limiter can honour.
var ErrInvalid = errors.New("ratelimit: invalid limit or burst")

// Bucket is a token bucket: it holds up to burst tokens, gains limit tokens
// per second, and an event of n takes n tokens or is refused. A new Bucket is
// full. It is safe for concurrent use. The zero Bucket refuses everything;
// use NewBucket.
type Bucket struct {
	limit Limit // immutable after NewBucket
	burst int   // immutable after NewBucket

	mu     sync.Mutex // guards tokens and last
	tokens float64    // tokens available at last
	last   time.Time  // when tokens was last brought up to date
}

// NewBucket returns a full bucket of burst tokens that refills at limit
// tokens per second. It returns ErrInvalid if limit is not positive (or NaN)
// or burst is below 1.
func NewBucket(limit Limit, burst int) (*Bucket, error) {
	if !(limit > 0) || burst < 1 {
		return nil, fmt.Errorf("new bucket (limit %v, burst %d): %w", float64(limit), burst, ErrInvalid)
	}
	return &Bucket{limit: limit, burst: burst, tokens: float64(burst)}, nil
}

// Allow is AllowN(now, 1).
func (b *Bucket) Allow(now time.Time) bool { return b.AllowN(now, 1) }

// GCRA holds the parameters of the generic cell rate algorithm: the
// emission interval (the time one token takes to come back) and the burst.
// The state of one limited key is a single int64, the theoretical arrival
// time (TAT) in Unix nanoseconds, which the caller owns and passes to
// AllowN; its zero value is a full bucket. A GCRA value is immutable and
// safe to share.
type GCRA struct {
	emission int64 // nanoseconds per token; 0 for Inf
	burst    int64 // tokens
}

// NewGCRA returns the parameters for limit events per second with bursts of
// up to burst events. The emission interval is rounded to whole
// nanoseconds, so rates for which 1e9/limit is a whole number are exact. It
// returns ErrInvalid if limit is not positive, burst is below 1, or a full
// burst would take more than about 70 years to refill.
func NewGCRA(limit Limit, burst int) (GCRA, error) {
	if limit == Inf {
		return GCRA{emission: 0, burst: int64(max(burst, 1))}, nil
	}
	em := math.Round(1e9 / float64(limit))
	// burst·emission must fit an int64 with room to add to a Unix time.
	if !(limit > 0) || burst < 1 || em*float64(burst) > math.MaxInt64/4 {
		return GCRA{}, fmt.Errorf("new gcra (limit %v, burst %d): %w", float64(limit), burst, ErrInvalid)
	}
	return GCRA{emission: max(int64(em), 1), burst: int64(burst)}, nil
}

// Emission returns the time one token takes to come back (0 for Inf).
func (g GCRA) Emission() time.Duration { return time.Duration(g.emission) }

// Allow is AllowN(tat, now, 1).
func (g GCRA) Allow(tat *atomic.Int64, now time.Time) bool { return g.AllowN(tat, now, 1) }

// Config sets up a Table. Its zero value works.
type Config struct {
	// Limit is each key's rate in events per second. Default 10.
	Limit Limit
	// Burst is each key's bucket size. Default 10.
	Burst int
	// Capacity is the number of key slots, rounded up to a multiple of
	// SetSize. Memory is 16 bytes per slot, all allocated by NewTable.
	// Default 65536.
	Capacity int
}

// SetSize is the number of slots a key may live in: its hash picks one set
// of SetSize slots (128 bytes), like a set-associative cache.
const SetSize = 8

// locks is the number of lock stripes of a Table.
const locks = 64

// slot is one key's state: 16 bytes, no pointers.
type slot struct {
	key uint64       // hash of the client key; 0 means never used. Guarded by the set's stripe lock.
	tat atomic.Int64 // the key's GCRA theoretical arrival time, Unix ns
}

// Table is a per-client limiter: each key gets its own GCRA bucket, kept in
// one 16-byte slot of a fixed array. A key whose bucket is full again (its
// TAT is not after now) is idle and its slot may be given to a new key,
// which loses nothing because a full bucket is what a new key starts with.
// When every slot of a new key's set belongs to an active key, the event is
// refused and counted (fail closed). Two keys whose 64-bit hashes collide
// share a bucket. A Table is safe for concurrent use.
type Table struct {
	gcra    GCRA
	seed    maphash.Seed
	slots   []slot              // len is a multiple of SetSize; never reallocated
	mu      [locks]sync.RWMutex // mu[s%locks] guards the keys of set s; RLock to read keys and CAS a TAT, Lock to give a slot a new key
	refused atomic.Uint64       // events refused because a key found no slot
}

// NewTable returns a table with every slot allocated and empty. It returns
// ErrInvalid (wrapped) for a negative Capacity or Burst or a bad Limit.
func NewTable(cfg Config) (*Table, error) {
	if cfg.Limit == 0 {
		cfg.Limit = 10
	}
	if cfg.Burst == 0 {
		cfg.Burst = 10
	}
	if cfg.Capacity == 0 {
		cfg.Capacity = 65536
	}
	if cfg.Capacity < 0 || cfg.Capacity > 1<<40 {
		return nil, fmt.Errorf("new table (capacity %d): %w", cfg.Capacity, ErrInvalid)
	}
	g, err := NewGCRA(cfg.Limit, cfg.Burst)
	if err != nil {
		return nil, fmt.Errorf("new table: %w", err)
	}
	sets := (cfg.Capacity + SetSize - 1) / SetSize
	return &Table{gcra: g, seed: maphash.MakeSeed(), slots: make([]slot, sets*SetSize)}, nil
}

// Cap returns the number of slots.
func (t *Table) Cap() int { return len(t.slots) }

// Refused returns how many events were refused because their key found no
// free or idle slot.
func (t *Table) Refused() uint64 { return t.refused.Load() }

// Allow is AllowN(key, now, 1).
func (t *Table) Allow(key string, now time.Time) bool { return t.AllowN(key, now, 1) }

// locate returns the hash of key (never 0), the set it lives in and the
// lock that guards that set's keys.
func (t *Table) locate(key string) (uint64, []slot, *sync.RWMutex) {
	h := maphash.String(t.seed, key)
	if h == 0 {
		h = 1
	}
	sets := uint64(len(t.slots) / SetSize)
	s := h % sets
	return h, t.slots[s*SetSize : (s+1)*SetSize], &t.mu[s%locks]
}
