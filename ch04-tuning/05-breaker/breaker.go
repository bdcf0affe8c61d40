//go:build !floodgate.solution

package breaker

import "time"

// current returns the state at now, moving Open to HalfOpen once
// OpenTimeout has passed. b.mu must be held.
func (b *Breaker) current(now time.Time) State {
	// TODO: Task 1. An open breaker whose OpenTimeout has passed becomes
	// half-open here.
	return b.state
}

// setState moves to state to at now: a new generation, fresh counts and
// window, and a transition queued for OnStateChange. b.mu must be held.
func (b *Breaker) setState(to State, now time.Time) {
	// TODO: Task 1. Change the state, bump the generation, reset since,
	// counts and window.
	// TODO: Task 3. Queue the transition in b.pending; never call
	// OnStateChange here, with b.mu held.
}

// before decides whether a call may start at now. b.mu must be held.
func (b *Breaker) before(now time.Time) (ticket, error) {
	// TODO: Task 1. Refuse with b.errOpen when open and with b.errProbes
	// when half-open with all probes taken; otherwise count the request
	// and hand out a ticket for this generation.
	// TODO: Task 2. When closed, count the request in the window too.
	return ticket{}, nil
}

// after counts the result of a call that before let through. b.mu must be
// held.
func (b *Breaker) after(t ticket, now time.Time, ok bool) {
	// TODO: Task 1. Ignore stale tickets; count the result; close a
	// half-open breaker after enough successes, open it on a failure; trip
	// a closed breaker when tripped says so.
	// TODO: Task 2. When closed, count a failure in the window.
}

// tripped reports whether a closed breaker's counts call for it to open.
// b.mu must be held.
func (b *Breaker) tripped(now time.Time) bool {
	// TODO: Task 1. ConsecutiveFailures in a row (unless the rule is off).
	// TODO: Task 2. Or the failure ratio over the window.
	return false
}

// add counts requests and failures for a call that started at age start,
// when the window is at age now. A call that started before the window's
// oldest bucket is not counted.
func (w *window) add(now, start, requests, failures uint64) {
	// TODO: Task 2. Find start's bucket in the ring; reset it if it holds
	// an older period.
}

// totals sums the buckets that are still inside the window at age now.
func (w *window) totals(now uint64) (requests, failures uint64) {
	// TODO: Task 2.
	return 0, 0
}

// notify tells OnStateChange about queued transitions, in order, without
// holding b.mu while a callback runs.
func (b *Breaker) notify() {
	// TODO: Task 3. Drain b.pending, unlocking around each callback. Use
	// b.delivering so that a callback that calls back into the breaker
	// does not deliver (or deadlock) inside itself.
}
