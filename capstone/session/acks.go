package session

import (
	"time"

	mqtt "floodgate/ch03-networking/03-mqtt"
)

// Acknowledgements wait for the store. A PUBACK, PUBREC, PUBCOMP, PUBREL,
// SUBACK or UNSUBACK is sent only once every store change made while its
// packet was handled is durable (the store's writer commits changes in
// batches, off the connection's goroutine or event loop). Each such packet
// is held in its session, in order, with the range of change numbers
// (from, to] its handling covered; the store calls back when the range is
// decided. A range with a failed change is never acknowledged: the
// connection is closed instead (a 5.0 client gets DISCONNECT 0x80), and the
// client sends the unacknowledged packet again when it reconnects.

// The reasons for the store's part in ending a connection (counters
// "disconnect_<reason>"), and the counter of publications refused while the
// store's queue is full.
const (
	// ReasonStoreError: a change this connection made did not commit, so
	// its acknowledgement will never be sent.
	ReasonStoreError = "store_error"
	// ReasonStoreBusy: a 3.1.1 client sent a QoS 1/2 PUBLISH while the
	// store's queue was full (a 5.0 client is answered 0x97 instead).
	ReasonStoreBusy = "store_busy"
)

// heldAcks is a session's acknowledgements waiting for the store. It exists
// only while some wait, so an idle session pays one pointer for it.
type heldAcks struct {
	held    []heldAck // in order
	waiting bool      // the store will call committed for held[0]
}

// heldAck is an acknowledgement waiting for the store.
type heldAck struct {
	c        *Conn
	from, to uint64       // the store changes it waits for: numbers in (from, to]
	p        mqtt.Packet  // sent once they are committed
	after    []pendingMsg // then delivered (a SUBSCRIBE's retained messages)
}

// mark returns the store's last change number, for sendAfter.
func (s *State) mark() uint64 { return s.persist.Seq() }

// busy reports whether the store refuses new work (its queue is full).
func (s *State) busy() bool { return s.persist.Busy() }

// sendAfter sends p on c, then delivers after to the session, once every
// store change made since mark returned from is durable, and after the
// acknowledgements held before it. It never blocks.
func (s *State) sendAfter(c *Conn, from uint64, p mqtt.Packet, after []pendingMsg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sendAfterLocked(c, from, p, after)
}

// sendAfterLocked is sendAfter with s.mu held.
func (s *State) sendAfterLocked(c *Conn, from uint64, p mqtt.Packet, after []pendingMsg) {
	h := heldAck{c: c, from: from, to: s.persist.Seq(), p: p, after: after}
	if s.acks == nil {
		// Nothing held before it: without a store it is decided now, and
		// with no allocation (the method value s.committed, passed
		// through the interface, is one: it is made only for a store).
		if _, none := s.persist.(noPersist); none {
			s.release(h, true)
			return
		}
		ok, decided := s.persist.Wait(h.from, h.to, s.committed)
		if decided {
			s.release(h, ok)
			return
		}
		s.acks = &heldAcks{held: []heldAck{h}, waiting: true}
		return
	}
	a := s.acks
	if len(a.held) >= s.maxQueue {
		// A client that does not wait for its acknowledgements while the
		// store is slow: the held ones are bounded like its queue.
		c.Kill(mqtt.ReceiveMaximumExceeded, ReasonReceiveMax)
		return
	}
	a.held = append(a.held, h)
	if !a.waiting {
		s.releaseLocked()
	}
}

// release sends h's acknowledgement (ok), or closes its connection (its
// changes did not all commit). s.mu is held.
func (s *State) release(h heldAck, ok bool) {
	if !ok {
		h.c.Kill(mqtt.UnspecifiedError, ReasonStoreError)
		return
	}
	h.c.send(h.p)
	// The retained messages are the session's, not the connection's: if
	// the client came back meanwhile, they go to its new connection (or
	// wait for it, QoS 1/2), though the SUBACK went with the old one.
	if len(h.after) > 0 {
		now := time.Now()
		for _, p := range h.after {
			s.deliverLocked(p, now)
		}
	}
}

// committed is the store's call back: the head of held is decided.
func (s *State) committed(bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.acks != nil {
		s.acks.waiting = false
		s.releaseLocked()
	}
}

// releaseLocked sends the held acknowledgements that are decided, in order,
// and asks the store to call back for the first that is not. s.mu is held
// and s.acks is not nil.
func (s *State) releaseLocked() {
	a := s.acks
	for len(a.held) > 0 {
		h := a.held[0]
		ok, decided := s.persist.Wait(h.from, h.to, s.committed)
		if !decided {
			a.waiting = true
			return
		}
		a.held[0] = heldAck{}
		a.held = a.held[1:]
		s.release(h, ok)
	}
	s.acks = nil // none left: an idle session keeps nothing
}
