package broker

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"floodgate/capstone/router"
	"floodgate/capstone/session"
	"floodgate/capstone/store"
	mqtt "floodgate/ch03-networking/03-mqtt"
	topics "floodgate/ch03-networking/04-topics"
)

// Persistence is group-committed: each change is queued, numbered, for the
// store's one writer (store.Writer) under the lock that orders it, never
// waiting for the disk; the writer commits what has queued up in one
// transaction (one fsync) and then releases the acknowledgements that
// waited for it (see session/acks.go). A change that does not commit is
// logged and counted ("store_error"), its acknowledgement is never sent
// (the connection is closed instead), and the broker goes on serving from
// memory.

func (b *Broker) storeErr(op string, err error) {
	if err != nil {
		b.Count("store_error")
		b.log.Error("store", "op", op, "err", err)
	}
}

// newWriter makes the store's writer, which counts and logs failed commits.
func (b *Broker) newWriter() *store.Writer {
	return store.NewWriter(b.store, store.WriterConfig{QueueSize: b.cfg.StoreQueue, OnError: func(err error, n int) {
		b.Count("store_error")
		b.log.Error("store commit failed", "changes", n, "err", err)
	}})
}

// submit queues c for the store's writer. It fails only for a change the
// broker never makes (invalid) or after Run has closed the writer.
func (b *Broker) submit(op string, c store.Change) {
	_, err := b.w.Submit(c)
	b.storeErr(op, err)
}

// Retain implements session.Hub: the router's retained message, and the
// store's.
func (b *Broker) Retain(m *router.Message) {
	if b.store == nil {
		b.router.Retain(m)
		return
	}
	b.retainMu.Lock() // one order per topic in the router and the store
	defer b.retainMu.Unlock()
	b.router.Retain(m)
	b.submit("retain", store.Change{Op: store.OpSetRetained, Message: toStore(m)})
}

// Changed implements session.Hub: a SUBSCRIBE or UNSUBSCRIBE changed st.
func (b *Broker) Changed(c *session.Conn, st *session.State) {
	if b.store == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.sessions[st.ID]; e != nil && e.st == st {
		b.saveLocked(st.ID, e)
	}
}

// saveLocked writes session e's record. b.mu is held.
func (b *Broker) saveLocked(id string, e *entry) {
	if b.store == nil || e.expiryInterval == 0 {
		return // a session that ends with its connection is not kept
	}
	rec := store.Session{ClientID: id, ProtocolVersion: byte(e.version), ExpiryInterval: e.expiryInterval,
		DisconnectedAt: e.disconnectedAt()}
	for _, s := range e.st.Subscriptions() {
		rec.Subscriptions = append(rec.Subscriptions, store.Subscription{Filter: s.Filter, QoS: byte(s.QoS),
			NoLocal: s.NoLocal, RetainAsPublished: s.RetainAsPublished, RetainHandling: s.RetainHandling, Identifier: s.ID})
	}
	if w := e.pendingWill(); w != nil {
		m := willMessage(id, w, e.disconnectedAt())
		rec.Will = &store.Will{Message: toStore(m), DelayInterval: w.Properties.WillDelay}
	}
	b.submit("save session", store.Change{Op: store.OpSaveSession, Session: rec})
}

func (b *Broker) deleteStored(id string) {
	if b.store != nil {
		b.submit("delete session", store.Change{Op: store.OpDeleteSession, ClientID: id})
	}
}

// load restores the store's retained messages and sessions. Expired ones
// are deleted (a pending will of an expired session is published).
func (b *Broker) load(now time.Time) error {
	retained, err := b.store.Retained()
	if err != nil {
		return fmt.Errorf("retained messages: %w", err)
	}
	for _, m := range retained {
		if rm := fromStore(m, ""); !rm.Expired(now) {
			b.router.Retain(rm)
		}
	}
	recs, err := b.store.Sessions()
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	var wills []*router.Message
	for _, rec := range recs {
		if rec.DisconnectedAt.IsZero() {
			rec.DisconnectedAt = now // it was connected when the broker stopped
		}
		if rec.Expired(now) {
			if rec.Will != nil {
				wills = append(wills, fromStore(rec.Will.Message, rec.ClientID))
			}
			b.storeErr("delete expired session", b.store.DeleteSession(rec.ClientID))
			continue
		}
		if err := b.restore(rec, now); err != nil {
			return fmt.Errorf("session %q: %w", rec.ClientID, err)
		}
	}
	for _, m := range wills {
		if m.Retain {
			b.Retain(m)
		}
		b.Route(m)
	}
	return nil
}

// restore rebuilds one session from its record and its in-flight messages.
func (b *Broker) restore(rec store.Session, now time.Time) error {
	id := rec.ClientID
	e := b.newEntry(id, true)
	e.version, e.expiryInterval = mqtt.Version(rec.ProtocolVersion), rec.ExpiryInterval
	e.setDisconnectedAt(rec.DisconnectedAt)
	var subs []router.Sub
	for _, s := range rec.Subscriptions {
		group, _, err := topics.ParseShare(s.Filter)
		if err != nil {
			return err
		}
		sub := router.Sub{Filter: s.Filter, Group: group, QoS: mqtt.QoS(s.QoS), NoLocal: s.NoLocal,
			RetainAsPublished: s.RetainAsPublished, RetainHandling: s.RetainHandling, ID: s.Identifier}
		if _, err := b.router.Subscribe(id, sub); err != nil {
			return err
		}
		subs = append(subs, sub)
	}
	flights, err := b.store.InFlight(id)
	if err != nil {
		return err
	}
	var out []session.Flight
	var in []uint16
	for _, f := range flights {
		switch f.Direction {
		case store.Outbound:
			m := fromStore(f.Message, "")
			pub := &mqtt.Publish{QoS: m.QoS, Retain: m.Retain, Topic: []byte(m.Topic), Payload: m.Payload,
				PacketID: f.PacketID, Properties: m.Props}
			out = append(out, session.Flight{Publish: pub, Released: f.State == store.AwaitingComp, Expires: m.Expires})
		case store.Inbound:
			in = append(in, f.PacketID)
		}
	}
	e.st.Restore(subs, out, in)
	if rec.Will != nil {
		w := &mqtt.Will{Topic: rec.Will.Topic, Payload: rec.Will.Payload, QoS: mqtt.QoS(rec.Will.QoS), Retain: rec.Will.Retain}
		w.Properties = fromStore(rec.Will.Message, id).Props
		w.Properties.WillDelay = rec.Will.DelayInterval
		e.offline().will = w
		if rec.Will.DelayInterval < rec.ExpiryInterval {
			left := rec.DisconnectedAt.Add(time.Duration(rec.Will.DelayInterval) * time.Second).Sub(now)
			e.off.willTimer = time.AfterFunc(max(0, left), func() { b.delayedWill(id, e) })
		}
	}
	if rec.ExpiryInterval != math.MaxUint32 {
		left := rec.DisconnectedAt.Add(time.Duration(rec.ExpiryInterval) * time.Second).Sub(now)
		e.offline().expiry = time.AfterFunc(max(0, left), func() { b.expire(id, e) })
	}
	b.mu.Lock()
	b.sessions[id] = e
	b.mu.Unlock()
	return nil
}

// willMessage is the message a will publishes.
func willMessage(id string, w *mqtt.Will, now time.Time) *router.Message {
	m := &router.Message{Topic: w.Topic, Payload: w.Payload, QoS: w.QoS, Retain: w.Retain, From: id}
	pr := &w.Properties
	m.Props = mqtt.Properties{PayloadFormat: pr.PayloadFormat, ContentType: pr.ContentType,
		ResponseTopic: pr.ResponseTopic, CorrelationData: pr.CorrelationData, User: pr.User}
	if pr.Has(mqtt.PropMessageExpiry) {
		m.Expires = now.Add(time.Duration(pr.MessageExpiry) * time.Second)
	}
	return m
}

func toStore(m *router.Message) store.Message {
	out := store.Message{Topic: m.Topic, Payload: m.Payload, QoS: byte(m.QoS), Retain: m.Retain,
		PayloadFormat: m.Props.PayloadFormat, ContentType: m.Props.ContentType, ResponseTopic: m.Props.ResponseTopic,
		CorrelationData: m.Props.CorrelationData, ExpiresAt: m.Expires}
	for _, u := range m.Props.User {
		out.UserProperties = append(out.UserProperties, store.UserProperty{Key: u.Key, Value: u.Value})
	}
	return out
}

func fromStore(m store.Message, from string) *router.Message {
	out := &router.Message{Topic: m.Topic, Payload: m.Payload, QoS: mqtt.QoS(m.QoS), Retain: m.Retain,
		Expires: m.ExpiresAt, From: from}
	out.Props = mqtt.Properties{PayloadFormat: m.PayloadFormat, ContentType: m.ContentType,
		ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData}
	if m.PayloadFormat != 0 {
		out.Props.Mark(mqtt.PropPayloadFormat)
	}
	for _, u := range m.UserProperties {
		out.Props.User = append(out.Props.User, mqtt.UserProperty{Key: u.Key, Value: u.Value})
	}
	return out
}

// persister queues a session's in-flight changes for the store's writer,
// and tells it when the changes it waits for are durable.
type persister struct {
	b *Broker
	// keep is false for a session that ends with its connection, and once
	// the session is dropped: its changes are then not written. It is
	// read and (after New) written with the session's lock held.
	keep atomic.Bool
}

func (p *persister) Seq() uint64 { return p.b.w.Last() }

func (p *persister) Wait(from, to uint64, done func(bool)) (bool, bool) {
	return p.b.w.Wait(from, to, done)
}

func (p *persister) Busy() bool { return p.b.w.Busy() }

func (p *persister) put(f store.InFlight) {
	if !p.keep.Load() {
		return
	}
	f.SentAt = time.Now()
	p.b.submit("put in-flight", store.Change{Op: store.OpPutInFlight, InFlight: f})
}

func (p *persister) del(client string, dir store.Direction, id uint16) {
	if !p.keep.Load() {
		return
	}
	p.b.submit("delete in-flight", store.Change{Op: store.OpDeleteInFlight,
		InFlight: store.InFlight{ClientID: client, Direction: dir, PacketID: id}})
}

func (p *persister) OutboundSent(client string, pub *mqtt.Publish, expires time.Time) {
	m := &router.Message{Topic: string(pub.Topic), Payload: pub.Payload, QoS: pub.QoS, Retain: pub.Retain,
		Props: pub.Properties, Expires: expires}
	p.put(store.InFlight{ClientID: client, Direction: store.Outbound, PacketID: pub.PacketID,
		State: store.AwaitingAck, Message: toStore(m)})
}

func (p *persister) OutboundReleased(client string, id uint16) {
	p.put(store.InFlight{ClientID: client, Direction: store.Outbound, PacketID: id, State: store.AwaitingComp,
		Message: store.Message{Topic: "-"}})
}

func (p *persister) OutboundDone(client string, id uint16) { p.del(client, store.Outbound, id) }

func (p *persister) InboundReceived(client string, id uint16, topic string) {
	p.put(store.InFlight{ClientID: client, Direction: store.Inbound, PacketID: id, State: store.AwaitingRel,
		Message: store.Message{Topic: topic}})
}

func (p *persister) InboundReleased(client string, id uint16) { p.del(client, store.Inbound, id) }
