//go:build floodgate.solution

package breaker

import "time"

// current returns the state at now, moving Open to HalfOpen once
// OpenTimeout has passed. b.mu must be held.
func (b *Breaker) current(now time.Time) State {
	if b.state == Open && b.since.Add(b.cfg.OpenTimeout).Before(now) {
		b.setState(HalfOpen, now)
	}
	return b.state
}

// setState moves to state to at now: a new generation, fresh counts and
// window, and a transition queued for OnStateChange. b.mu must be held.
func (b *Breaker) setState(to State, now time.Time) {
	if to == b.state {
		return
	}
	from := b.state
	b.state = to
	b.generation++
	b.since = now
	b.counts = Counts{}
	clear(b.window.buckets)
	if b.cfg.OnStateChange != nil {
		b.pending = append(b.pending, transition{from, to}) // told by notify, after the unlock
	}
}

// before decides whether a call may start at now. b.mu must be held.
func (b *Breaker) before(now time.Time) (ticket, error) {
	switch b.current(now) {
	case Open:
		return ticket{}, b.errOpen
	case HalfOpen:
		if b.counts.Requests >= uint64(b.cfg.HalfOpenProbes) {
			return ticket{}, b.errProbes
		}
	}
	t := ticket{generation: b.generation, age: b.age(now)}
	b.counts.Requests++
	if b.state == Closed {
		b.window.add(t.age, t.age, 1, 0)
	}
	return t, nil
}

// after counts the result of a call that before let through. b.mu must be
// held.
func (b *Breaker) after(t ticket, now time.Time, ok bool) {
	state := b.current(now)
	if t.generation != b.generation {
		return // the call started before the last state change
	}
	if ok {
		b.counts.Successes++
		b.counts.ConsecutiveSuccesses++
		b.counts.ConsecutiveFailures = 0
		if state == HalfOpen && b.counts.ConsecutiveSuccesses >= uint64(b.cfg.HalfOpenProbes) {
			b.setState(Closed, now)
		}
		return
	}
	b.counts.Failures++
	b.counts.ConsecutiveFailures++
	b.counts.ConsecutiveSuccesses = 0
	switch state {
	case HalfOpen:
		b.setState(Open, now)
	case Closed:
		b.window.add(b.age(now), t.age, 0, 1)
		if b.tripped(now) {
			b.setState(Open, now)
		}
	}
}

// tripped reports whether a closed breaker's counts call for it to open.
// b.mu must be held.
func (b *Breaker) tripped(now time.Time) bool {
	if n := b.cfg.ConsecutiveFailures; n > 0 && b.counts.ConsecutiveFailures >= uint64(n) {
		return true
	}
	if b.cfg.FailureRatio <= 0 {
		return false
	}
	req, fail := b.window.totals(b.age(now))
	return req > 0 && req >= uint64(b.cfg.MinRequests) &&
		float64(fail)/float64(req) >= b.cfg.FailureRatio
}

// add counts requests and failures for a call that started at age start,
// when the window is at age now. A call that started before the window's
// oldest bucket is not counted.
func (w *window) add(now, start, requests, failures uint64) {
	n := uint64(len(w.buckets))
	if n == 0 || start > now || now-start >= n {
		return
	}
	bk := &w.buckets[start%n]
	if bk.age != start {
		*bk = bucket{age: start} // the slot held an older period: reuse it
	}
	bk.requests += requests
	bk.failures += failures
}

// totals sums the buckets that are still inside the window at age now.
func (w *window) totals(now uint64) (requests, failures uint64) {
	n := uint64(len(w.buckets))
	for _, bk := range w.buckets {
		if bk.age <= now && now-bk.age < n {
			requests += bk.requests
			failures += bk.failures
		}
	}
	return requests, failures
}

// notify tells OnStateChange about queued transitions, in order, without
// holding b.mu while a callback runs. If another goroutine is already
// delivering (perhaps the callback itself, calling back into the breaker),
// it leaves the queue to that goroutine, which drains it.
func (b *Breaker) notify() {
	b.mu.Lock()
	if b.delivering {
		b.mu.Unlock()
		return
	}
	b.delivering = true
	for len(b.pending) > 0 {
		tr := b.pending[0]
		b.pending = b.pending[1:]
		b.mu.Unlock()
		b.cfg.OnStateChange(b.cfg.Name, tr.from, tr.to)
		b.mu.Lock()
	}
	b.delivering = false
	b.mu.Unlock()
}
