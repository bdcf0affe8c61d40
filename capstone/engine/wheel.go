package engine

import "time"

// wheel is a hashed timing wheel: one list per tick of time, and a cursor
// that passes one slot per tick. A connection sits in at most one slot, the
// one of its earliest deadline (or the farthest slot, when that deadline is
// more than a turn away); a deadline that moves later does not move the
// entry: when its slot comes round, the entry is looked at again and moved
// on. So a read, which pushes the keepalive deadline back, costs one store
// and no list work, and an idle connection costs two pointers and no timer.
// Owned by one loop: no lock.
type wheel struct {
	tick  time.Duration
	slots []*timed
	cur   int       // the slot whose tick is [at, at+tick)
	at    time.Time // start of slot cur
	n     int       // entries held
}

// timed is what a connection embeds to sit in a wheel.
type timed struct {
	prev, next *timed
	slot       int // -1: in no slot
	owner      deadliner
}

// deadliner is what a wheel entry belongs to.
type deadliner interface {
	deadline() time.Time // zero: none
	expire(now time.Time)
}

func newWheel(tick time.Duration, slots int, now time.Time) *wheel {
	return &wheel{tick: tick, slots: make([]*timed, slots), at: now}
}

// schedule puts t in the slot of its deadline (a zero deadline: in none).
func (w *wheel) schedule(t *timed, now time.Time) {
	w.remove(t)
	d := t.owner.deadline()
	if d.IsZero() {
		return
	}
	if w.n == 0 {
		w.at = now // nothing pending: the cursor may have fallen behind
	}
	ticks := 0
	if d.After(w.at) {
		ticks = int(d.Sub(w.at) / w.tick)
	}
	ticks = min(ticks, len(w.slots)-1)
	s := (w.cur + ticks) % len(w.slots)
	t.slot, t.prev, t.next = s, nil, w.slots[s]
	if t.next != nil {
		t.next.prev = t
	}
	w.slots[s] = t
	w.n++
}

// remove takes t out of its slot, if it is in one.
func (w *wheel) remove(t *timed) {
	if t.slot < 0 {
		return
	}
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		w.slots[t.slot] = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	}
	t.prev, t.next, t.slot = nil, nil, -1
	w.n--
}

// advance passes every slot whose tick has ended by now: an entry whose
// deadline has come expires (it is out of the wheel when expire runs), the
// others move on to the slot of their deadline.
func (w *wheel) advance(now time.Time) {
	if w.n == 0 {
		w.at = now
		return
	}
	for w.n > 0 && !now.Before(w.at.Add(w.tick)) {
		t := w.slots[w.cur]
		w.slots[w.cur] = nil
		w.cur, w.at = (w.cur+1)%len(w.slots), w.at.Add(w.tick)
		for t != nil {
			next := t.next
			t.prev, t.next, t.slot = nil, nil, -1
			w.n--
			if d := t.owner.deadline(); !d.IsZero() && !now.Before(d) {
				t.owner.expire(now)
			} else {
				w.schedule(t, now)
			}
			t = next
		}
	}
}
