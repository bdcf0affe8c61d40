// Package breaker is a circuit breaker: it stops calling a downstream that
// keeps failing, so the failures stop costing time, threads and retries,
// and lets a few probes through later to find out whether it has healed.
//
// The breaker is a state machine. Closed passes every call and counts the
// results; it trips to Open after ConsecutiveFailures failures in a row, or
// when the failure ratio over a rolling window of time buckets reaches
// FailureRatio. Open refuses every call with ErrOpen until OpenTimeout has
// passed, then becomes HalfOpen, which lets HalfOpenProbes calls through:
// if they all succeed the breaker closes, and one failure opens it again.
//
// Time comes from Config.Now, so tests drive it, and nothing runs in the
// background: a state that changes with time (Open to HalfOpen) changes
// when the breaker is next asked. State-change callbacks run in order,
// outside the breaker's lock, so a callback may call the breaker.
package breaker

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// State is where the breaker is in its state machine.
type State int

// The states, numbered as in github.com/sony/gobreaker.
const (
	Closed State = iota
	HalfOpen
	Open
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

var (
	// ErrOpen is returned, wrapped, for a call refused because the breaker
	// is open.
	ErrOpen = errors.New("breaker is open")
	// ErrTooManyProbes is returned, wrapped, for a call refused because the
	// half-open breaker already let HalfOpenProbes calls through.
	ErrTooManyProbes = errors.New("breaker is half-open and its probes are taken")
	// ErrInvalidConfig is returned, wrapped, by New.
	ErrInvalidConfig = errors.New("invalid breaker config")
)

// Config sets up a Breaker. Its zero value works.
type Config struct {
	// Name appears in errors and callbacks. Default "breaker".
	Name string
	// ConsecutiveFailures trips a closed breaker after this many failed
	// calls in a row. Default 5; -1 turns the rule off.
	ConsecutiveFailures int
	// FailureRatio trips a closed breaker when, over Window, at least
	// MinRequests calls started and failures/calls >= FailureRatio.
	// Default 0: the rule is off.
	FailureRatio float64
	// MinRequests is the fewest calls in the window for FailureRatio to
	// count. Default 20.
	MinRequests int
	// Window is the span of the rolling window. Default 10s.
	Window time.Duration
	// Buckets is how many time buckets the window is cut into; the window
	// rolls one bucket at a time, counted from the moment the breaker last
	// closed. Default 10.
	Buckets int
	// OpenTimeout is how long the breaker stays open before it lets probes
	// through. Default 30s.
	OpenTimeout time.Duration
	// HalfOpenProbes is how many calls a half-open breaker lets through;
	// that many successes close it. Default 1.
	HalfOpenProbes int
	// IsFailure says whether a call's error counts as a failure. Default:
	// every non-nil error.
	IsFailure func(err error) bool
	// OnStateChange, if set, is called once per state change, in order,
	// never under the breaker's lock. It runs on a goroutine that called the
	// breaker; it may call the breaker. It must not panic.
	OnStateChange func(name string, from, to State)
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Counts are the results the breaker has counted since its state last
// changed. They are uint64 so that they never wrap: a closed breaker in a
// long-running process can count more than 2^32 calls (at a million a
// second, in 72 minutes), and a wrapped count would change its decisions.
type Counts struct {
	Requests             uint64 // calls let through
	Successes            uint64
	Failures             uint64
	ConsecutiveSuccesses uint64
	ConsecutiveFailures  uint64
}

// bucket is one slice of the rolling window.
type bucket struct {
	age      uint64 // which bucket period since the breaker closed this holds
	requests uint64
	failures uint64
}

// window counts calls and failures over the last len(buckets) bucket
// periods. Age is the number of whole bucket periods since the breaker last
// changed state.
type window struct {
	buckets []bucket
}

// ticket is what a call that was let through carries to its end: which
// generation (stretch between state changes) and bucket it started in.
type ticket struct {
	generation uint64
	age        uint64
}

// transition is one state change waiting to be told to OnStateChange.
type transition struct{ from, to State }

// Breaker is a circuit breaker. It is safe for concurrent use.
type Breaker struct {
	cfg        Config // immutable after New, defaults filled in
	bucketSize time.Duration
	errOpen    error // ErrOpen wrapped with the name, built once
	errProbes  error // ErrTooManyProbes wrapped with the name

	mu         sync.Mutex   // guards every field below
	state      State        // state as of the last check
	generation uint64       // bumped at every state change; stale results are ignored
	since      time.Time    // when the state last changed
	counts     Counts       // since the state last changed
	window     window       // closed state only
	pending    []transition // state changes not yet told to OnStateChange
	delivering bool         // a goroutine is running OnStateChange callbacks
}

// New returns a closed breaker. It returns ErrInvalidConfig (wrapped) for
// negative durations, counts or a ratio above 1.
func New(cfg Config) (*Breaker, error) {
	if cfg.Name == "" {
		cfg.Name = "breaker"
	}
	if cfg.ConsecutiveFailures == 0 {
		cfg.ConsecutiveFailures = 5
	}
	if cfg.MinRequests == 0 {
		cfg.MinRequests = 20
	}
	if cfg.Window == 0 {
		cfg.Window = 10 * time.Second
	}
	if cfg.Buckets == 0 {
		cfg.Buckets = 10
	}
	if cfg.OpenTimeout == 0 {
		cfg.OpenTimeout = 30 * time.Second
	}
	if cfg.HalfOpenProbes == 0 {
		cfg.HalfOpenProbes = 1
	}
	if cfg.IsFailure == nil {
		cfg.IsFailure = func(err error) bool { return err != nil }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.ConsecutiveFailures < -1, cfg.FailureRatio < 0, cfg.FailureRatio > 1,
		cfg.MinRequests < 0, cfg.Window < 0, cfg.Buckets < 0, cfg.OpenTimeout < 0,
		cfg.HalfOpenProbes < 0, cfg.Window < time.Duration(cfg.Buckets):
		return nil, fmt.Errorf("breaker.New %q: %w", cfg.Name, ErrInvalidConfig)
	}
	b := &Breaker{
		cfg:        cfg,
		bucketSize: cfg.Window / time.Duration(cfg.Buckets),
		errOpen:    fmt.Errorf("breaker %q: %w", cfg.Name, ErrOpen),
		errProbes:  fmt.Errorf("breaker %q: %w", cfg.Name, ErrTooManyProbes),
		since:      cfg.Now(),
		window:     window{buckets: make([]bucket, cfg.Buckets)},
	}
	return b, nil
}

// Allow asks to make one call. If the breaker lets it through, the caller
// must call done exactly once with the call's error; otherwise Allow returns
// an error that wraps ErrOpen or ErrTooManyProbes. A done for a call that
// started before the breaker last changed state is ignored, and so is a
// second call of the same done.
func (b *Breaker) Allow() (done func(err error), err error) {
	t, err := b.start()
	if err != nil {
		return nil, err
	}
	var once sync.Once
	return func(err error) { once.Do(func() { b.finish(t, err) }) }, nil
}

// Execute runs fn if the breaker lets it through and returns fn's error, or
// the breaker's error without running fn. A panic in fn counts as a failure
// and is re-raised; so does a runtime.Goexit (t.FailNow in a test), which
// then goes on unwinding.
func (b *Breaker) Execute(fn func() error) (err error) {
	t, err := b.start()
	if err != nil {
		return err
	}
	returned := false
	defer func() {
		if returned {
			b.finish(t, err)
			return
		}
		p := recover() // nil for runtime.Goexit
		if p == nil {
			b.finish(t, errors.New("runtime.Goexit"))
			return
		}
		b.finish(t, fmt.Errorf("panic: %v", p))
		panic(p)
	}()
	err = fn()
	returned = true
	return err
}

// start runs before under the lock, then tells any state change.
func (b *Breaker) start() (ticket, error) {
	b.mu.Lock()
	t, err := b.before(b.cfg.Now())
	b.mu.Unlock()
	if b.cfg.OnStateChange != nil {
		b.notify()
	}
	return t, err
}

// finish runs after under the lock, then tells any state change.
func (b *Breaker) finish(t ticket, err error) {
	ok := !b.cfg.IsFailure(err)
	b.mu.Lock()
	b.after(t, b.cfg.Now(), ok)
	b.mu.Unlock()
	if b.cfg.OnStateChange != nil {
		b.notify()
	}
}

// State returns the breaker's state now.
func (b *Breaker) State() State {
	b.mu.Lock()
	s := b.current(b.cfg.Now())
	b.mu.Unlock()
	if b.cfg.OnStateChange != nil {
		b.notify()
	}
	return s
}

// Counts returns the results counted since the state last changed.
func (b *Breaker) Counts() Counts {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.counts
}

// Name returns the breaker's name.
func (b *Breaker) Name() string { return b.cfg.Name }

// age is the number of whole bucket periods since the state last changed.
// b.mu must be held.
func (b *Breaker) age(now time.Time) uint64 {
	if d := now.Sub(b.since); d > 0 {
		return uint64(d / b.bucketSize)
	}
	return 0
}
