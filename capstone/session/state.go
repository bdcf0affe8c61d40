package session

import (
	"sync"
	"time"

	"floodgate/capstone/router"
	mqtt "floodgate/ch03-networking/03-mqtt"
)

// State is a client's session: what outlives a connection (MQTT 5.0 section
// 4.1). The broker keeps it by client identifier; at most one Conn is
// attached to it at a time. All fields but ID are guarded by mu; a State
// method holds mu while it hands packets to the attached Conn's queue,
// which never blocks.
type State struct {
	ID string

	mu       sync.Mutex
	conn     *Conn               // attached connection, nil while offline
	subs     []router.Sub        // one per filter as subscribed, in no order: a slice, not a map, for the usual few
	subIdx   map[string]int      // index in subs by filter, kept only past subIndexFrom subscriptions
	inflight []*flight           // outbound QoS 1/2 not yet acknowledged, in send order
	pending  []pendingMsg        // outbound QoS 1/2 waiting for the window (or for the client)
	inQoS2   map[uint16]struct{} // inbound QoS 2 ids received, PUBREL not yet [MQTT-4.3.3-9]; nil until the first
	nextID   uint16
	maxQueue int
	counter  func(string)
	persist  Persister // never nil; set before the State is shared
	acks     *heldAcks // acknowledgements waiting for the store (acks.go); nil: none
}

// Persister records a session's in-flight QoS 1/2 state as it changes, so a
// restarted broker can resend it. Its methods are called with the State's
// lock held, in the order of the changes; they must not block (a change is
// queued for the store's writer, and numbered) and must not call back into
// the State. The broker implements it on its store (store.Writer).
//
// Acknowledgements wait for durability through Seq and Wait: a connection
// notes Seq before it handles a packet and, after, holds the packet's
// acknowledgement until Wait says every change numbered in between is
// committed (see acks.go).
type Persister interface {
	// Seq returns the number of the last change queued so far (0: none);
	// a change queued later, by anyone, gets a higher number.
	Seq() uint64
	// Wait reports whether every change numbered in (from, to] is
	// committed: decided is true if that is known now (ok: all committed;
	// not ok: one failed). Otherwise it returns decided false and calls
	// done once it is known, from another goroutine, holding none of the
	// State's locks.
	Wait(from, to uint64, done func(ok bool)) (ok, decided bool)
	// Busy reports whether the store's queue is full: the session then
	// refuses new QoS 1/2 and retained publications.
	Busy() bool

	// OutboundSent: pub (with its packet id) was sent and awaits PUBACK or
	// PUBREC; expires is the message's expiry (zero: none).
	OutboundSent(client string, pub *mqtt.Publish, expires time.Time)
	// OutboundReleased: PUBREC came, PUBREL was sent, PUBCOMP awaited.
	OutboundReleased(client string, id uint16)
	// OutboundDone: the message is acknowledged.
	OutboundDone(client string, id uint16)
	// InboundReceived: a QoS 2 PUBLISH to topic was routed and PUBREC
	// sent; PUBREL awaited.
	InboundReceived(client string, id uint16, topic string)
	// InboundReleased: its PUBREL came.
	InboundReleased(client string, id uint16)
}

type noPersist struct{}

func (noPersist) Seq() uint64                                  { return 0 }
func (noPersist) Wait(uint64, uint64, func(bool)) (bool, bool) { return true, true }
func (noPersist) Busy() bool                                   { return false }

func (noPersist) OutboundSent(string, *mqtt.Publish, time.Time) {}
func (noPersist) OutboundReleased(string, uint16)               {}
func (noPersist) OutboundDone(string, uint16)                   {}
func (noPersist) InboundReceived(string, uint16, string)        {}
func (noPersist) InboundReleased(string, uint16)                {}

// SetPersister makes p receive the session's in-flight changes (nil: none).
// Call it before the State is shared.
func (s *State) SetPersister(p Persister) {
	if p == nil {
		p = noPersist{}
	}
	s.persist = p
}

// Ended runs last with the State's lock held, so no in-flight change of
// the session reaches its Persister while last runs: the broker turns its
// persister off and queues the stored session's delete there, and nothing
// of the session is queued after the delete. last must not call back
// into the State.
func (s *State) Ended(last func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last()
}

// Flight is an outbound QoS 1/2 message a store kept: sent and not yet
// acknowledged, or queued.
type Flight struct {
	Publish  *mqtt.Publish // with its packet id
	Released bool          // PUBREC came: resend PUBREL, not PUBLISH
	Expires  time.Time     // the message's expiry; zero: none
}

// Restore gives a new, unshared State what a store kept: its
// subscriptions, its outbound messages in flight (in their original order)
// and its inbound QoS 2 packet ids awaiting PUBREL.
func (s *State) Restore(subs []router.Sub, flights []Flight, inQoS2 []uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range subs {
		s.putSub(sub)
	}
	for _, f := range flights {
		pub := f.Publish
		s.nextID = max(s.nextID, pub.PacketID)
		if f.Released {
			s.inflight = append(s.inflight, &flight{id: pub.PacketID, pub: pub, rel: true})
			continue
		}
		// Sent or only queued, nobody knows: resend it with DUP, within
		// the window of the client that comes back.
		m := &router.Message{Topic: string(pub.Topic), Payload: pub.Payload, QoS: pub.QoS, Retain: pub.Retain,
			Props: pub.Properties, Expires: f.Expires}
		m.Props.SubscriptionIDs = nil
		s.pending = append(s.pending, pendingMsg{m: m, qos: pub.QoS, retained: pub.Retain,
			subIDs: pub.Properties.SubscriptionIDs, id: pub.PacketID, dup: true})
	}
	for _, id := range inQoS2 {
		if s.inQoS2 == nil {
			s.inQoS2 = make(map[uint16]struct{})
		}
		s.inQoS2[id] = struct{}{}
	}
}

type flight struct {
	id  uint16
	pub *mqtt.Publish
	rel bool // PUBREC received, PUBREL sent, waiting for PUBCOMP
}

type pendingMsg struct {
	m        *router.Message
	qos      mqtt.QoS
	retained bool // the retain flag to send
	subIDs   []uint32
	id       uint16 // packet id given when it was queued (and persisted); 0: none yet
	dup      bool   // restored from a store: it may have been sent before
}

// NewState returns an empty session for client id. maxQueue bounds the
// messages kept for it beyond the in-flight window (0: 1000); count, if not
// nil, is called with the name of each message dropped.
func NewState(id string, maxQueue int, count func(string)) *State {
	if maxQueue <= 0 {
		maxQueue = 1000
	}
	if count == nil {
		count = func(string) {}
	}
	return &State{ID: id,
		maxQueue: maxQueue, counter: count, persist: noPersist{}}
}

// Subscriptions returns a copy of the session's subscriptions.
func (s *State) Subscriptions() []router.Sub {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]router.Sub, 0, len(s.subs))
	out = append(out, s.subs...)
	return out
}

// Inflight returns how many outbound QoS 1/2 messages await acknowledgement,
// and how many more wait behind the window.
func (s *State) Inflight() (inflight, pending int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inflight), len(s.pending)
}

// Deliver gives the session its copy of m at qos. retained is the RETAIN
// flag to send. Offline, a QoS 0 message is dropped and a QoS 1/2 one is
// kept (dropping the oldest beyond maxQueue, counted "offline_queue_full").
// Online, it is sent now or queued behind the in-flight window; a full queue
// disconnects the client as a slow consumer. Deliver never blocks.
func (s *State) Deliver(m *router.Message, qos mqtt.QoS, retained bool, subIDs []uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deliverLocked(pendingMsg{m: m, qos: qos, retained: retained, subIDs: subIDs}, time.Now())
}

func (s *State) deliverLocked(p pendingMsg, now time.Time) {
	c := s.conn
	if p.qos == mqtt.AtMostOnce && c == nil {
		return
	}
	if p.qos > mqtt.AtMostOnce && (c == nil || len(s.inflight) >= c.window) {
		if len(s.pending) >= s.maxQueue {
			if c != nil {
				c.kill(mqtt.QuotaExceeded, ReasonSlowConsumer, ReasonSlowConsumer+"_pending")
				return
			}
			s.forget(s.pending[0])
			s.pending = s.pending[1:]
			s.counter("offline_queue_full")
		}
		if p.id == 0 {
			// Queued QoS 1/2 messages are persisted too, with the packet
			// id they will be sent with, so an acknowledged publication
			// survives a crash even when its subscriber is away.
			p.id = s.newID()
			pub := &mqtt.Publish{QoS: p.qos, Retain: p.retained, Topic: []byte(p.m.Topic), Payload: p.m.Payload,
				PacketID: p.id, Properties: p.m.Props}
			pub.Properties.SubscriptionIDs = p.subIDs
			s.persist.OutboundSent(s.ID, pub, p.m.Expires)
		}
		s.pending = append(s.pending, p)
		return
	}
	// [MQTT-3.3.2-5] a message whose expiry has passed before onward
	// delivery started is not sent.
	if p.m.Expired(now) {
		s.forget(p)
		s.counter("expired")
		return
	}
	pub := c.buildPublish(p, now)
	if !c.fits(pub) {
		// [MQTT-3.1.2-25] never send a packet larger than the client's
		// Maximum Packet Size: discard it as if it had been delivered.
		s.forget(p)
		s.counter("too_large_for_client")
		return
	}
	if p.qos > mqtt.AtMostOnce {
		if p.id != 0 {
			pub.PacketID, pub.Dup = p.id, p.dup // [MQTT-3.3.1-1]
		} else {
			pub.PacketID = s.newID()
			s.persist.OutboundSent(s.ID, pub, p.m.Expires)
		}
		s.inflight = append(s.inflight, &flight{id: pub.PacketID, pub: pub})
	}
	c.send(pub)
}

// forget drops a queued message's stored copy. s.mu is held.
func (s *State) forget(p pendingMsg) {
	if p.id != 0 {
		s.persist.OutboundDone(s.ID, p.id)
	}
}

// newID returns a packet identifier not used by any message in flight or
// queued [MQTT-2.2.1-3]. s.mu is held.
func (s *State) newID() uint16 {
	for {
		s.nextID++
		if s.nextID == 0 {
			s.nextID = 1
		}
		used := false
		for _, f := range s.inflight {
			used = used || f.id == s.nextID
		}
		for _, p := range s.pending {
			used = used || p.id == s.nextID
		}
		if !used {
			return s.nextID
		}
	}
}

// fill moves pending messages into the window while it has room. s.mu is
// held.
func (s *State) fill(now time.Time) {
	for s.conn != nil && len(s.pending) > 0 && len(s.inflight) < s.conn.window {
		p := s.pending[0]
		s.pending = s.pending[1:]
		s.deliverLocked(p, now)
	}
}

// attach makes c the session's connection and resends, in order, every
// message in flight: PUBLISH with DUP set, or PUBREL for those already
// PUBREC'd [MQTT-4.4.0-1] [MQTT-3.3.1-1]; then it fills the window.
func (s *State) attach(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn = c
	for _, f := range s.inflight {
		if f.rel {
			// The PUBREC's change (released) may still be queued, or may
			// have failed: the first PUBREL was held for it. Write it
			// again and hold this PUBREL for it too, so the client never
			// completes a message that a restart would resend as a
			// PUBLISH it takes for a new one. PUBRELs keep their order.
			from := s.persist.Seq()
			s.persist.OutboundReleased(s.ID, f.id)
			s.sendAfterLocked(c, from, &mqtt.PubRel{PacketID: f.id}, nil)
			continue
		}
		dup := *f.pub
		dup.Dup = true
		c.send(&dup)
	}
	s.fill(time.Now())
}

// detach forgets c if it is still the session's connection.
func (s *State) detach(c *Conn) {
	s.mu.Lock()
	if s.conn == c {
		s.conn = nil
	}
	s.mu.Unlock()
}

// ack handles PUBACK, PUBREC and PUBCOMP from the client for packet id. It
// reports whether id was in flight in the right state.
func (s *State) ack(t mqtt.PacketType, id uint16, code mqtt.ReasonCode) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.inflight {
		if f.id != id {
			continue
		}
		switch {
		case t == mqtt.PUBACK && !f.rel && f.pub.QoS == mqtt.AtLeastOnce,
			t == mqtt.PUBCOMP && f.rel,
			t == mqtt.PUBREC && !f.rel && f.pub.QoS == mqtt.ExactlyOnce && code.IsError():
			s.inflight = append(s.inflight[:i], s.inflight[i+1:]...)
			s.persist.OutboundDone(s.ID, id)
			s.fill(time.Now())
			return true
		case t == mqtt.PUBREC && !f.rel && f.pub.QoS == mqtt.ExactlyOnce:
			// [MQTT-4.3.3-4] answer PUBREC with PUBREL and keep the id.
			f.rel = true
			from := s.persist.Seq()
			s.persist.OutboundReleased(s.ID, id)
			if s.conn != nil {
				// Once PUBREC's change is durable: a restart must resend
				// PUBREL, never the PUBLISH the client has completed.
				s.sendAfterLocked(s.conn, from, &mqtt.PubRel{PacketID: id}, nil)
			}
			return true
		}
		return false
	}
	return false
}

// subscribe records sub; it reports whether the filter was already
// subscribed.
func (s *State) subscribe(sub router.Sub) (existed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putSub(sub)
}

// putSub adds sub, or replaces the subscription with its filter; it
// reports whether there was one. s.mu is held (or s is not shared yet).
func (s *State) putSub(sub router.Sub) (existed bool) {
	if i := s.findSub(sub.Filter); i >= 0 {
		s.subs[i] = sub
		return true
	}
	s.subs = append(s.subs, sub)
	switch {
	case s.subIdx != nil:
		s.subIdx[sub.Filter] = len(s.subs) - 1
	case len(s.subs) > subIndexFrom:
		s.subIdx = make(map[string]int, len(s.subs))
		for i := range s.subs {
			s.subIdx[s.subs[i].Filter] = i
		}
	}
	return false
}

// subIndexFrom is how many subscriptions a session holds before it indexes
// them by filter: a scan of a few costs less than a map, of thousands more.
const subIndexFrom = 16

// findSub returns the index in s.subs of filter's subscription, or -1.
// s.mu is held.
func (s *State) findSub(filter string) int {
	if s.subIdx != nil {
		if i, ok := s.subIdx[filter]; ok {
			return i
		}
		return -1
	}
	for i := range s.subs {
		if s.subs[i].Filter == filter {
			return i
		}
	}
	return -1
}

func (s *State) unsubscribe(filter string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.findSub(filter)
	if i < 0 {
		return false
	}
	last := len(s.subs) - 1
	if s.subIdx != nil {
		delete(s.subIdx, filter)
		if i != last {
			s.subIdx[s.subs[last].Filter] = i
		}
	}
	s.subs[i] = s.subs[last]
	s.subs[last] = router.Sub{}
	s.subs = s.subs[:last]
	return true
}

// receivedQoS2 records an inbound QoS 2 id; it reports false if the id was
// already recorded (a resent PUBLISH that must not be routed again
// [MQTT-4.3.3-9]) and the number of ids now held.
func (s *State) receivedQoS2(id uint16) (isNew bool, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.inQoS2[id]; ok {
		return false, len(s.inQoS2)
	}
	if s.inQoS2 == nil {
		s.inQoS2 = make(map[uint16]struct{})
	}
	s.inQoS2[id] = struct{}{}
	return true, len(s.inQoS2)
}

// routedQoS2 records that the inbound QoS 2 message id to topic has been
// routed, for a store.
func (s *State) routedQoS2(id uint16, topic string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.inQoS2[id]; ok {
		s.persist.InboundReceived(s.ID, id, topic)
	}
}

// unreceivedQoS2 forgets an inbound QoS 2 id receivedQoS2 recorded, for a
// PUBLISH refused before it was routed (so before anything was stored).
func (s *State) unreceivedQoS2(id uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inQoS2, id)
}

func (s *State) inQoS2Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inQoS2)
}

// released forgets an inbound QoS 2 id (on PUBREL, or for a PUBLISH
// refused with an error code); it reports whether it was held. stored is
// whether the store may hold the id: then its delete is written even when
// memory no longer holds it. A PUBREL resent because the first one's
// delete failed (PUBCOMP withheld, connection closed) finds the id gone
// from memory but not from the store; unless it deletes it again, and its
// PUBCOMP waits for that, a restart brings the id back and the client's
// next QoS 2 PUBLISH with it is taken for a resend and never routed
// [MQTT-4.3.3-9].
func (s *State) released(id uint16, stored bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.inQoS2[id]
	delete(s.inQoS2, id)
	if ok || stored {
		s.persist.InboundReleased(s.ID, id)
	}
	return ok
}
