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
	if len(s.held) >= s.maxQueue {
		// A client that does not wait for its acknowledgements while the
		// store is slow: the held ones are bounded like its queue.
		c.Kill(mqtt.ReceiveMaximumExceeded, ReasonReceiveMax)
		return
	}
	s.held = append(s.held, heldAck{c: c, from: from, to: s.persist.Seq(), p: p, after: after})
	if !s.waiting {
		s.releaseLocked()
	}
}

// committed is the store's call back: the head of held is decided.
func (s *State) committed(bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiting = false
	s.releaseLocked()
}

// releaseLocked sends the held acknowledgements that are decided, in order,
// and asks the store to call back for the first that is not. s.mu is held.
func (s *State) releaseLocked() {
	for len(s.held) > 0 {
		h := s.held[0]
		ok, decided := s.persist.Wait(h.from, h.to, s.committed)
		if !decided {
			s.waiting = true
			return
		}
		s.held[0] = heldAck{}
		s.held = s.held[1:]
		if !ok {
			h.c.Kill(mqtt.UnspecifiedError, ReasonStoreError)
			continue
		}
		h.c.send(h.p)
		if len(h.after) > 0 && h.c == s.conn {
			now := time.Now()
			for _, p := range h.after {
				s.deliverLocked(p, now)
			}
		}
	}
	s.held = nil
}
