//go:build floodgate.solution

package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"floodgate/capstone/ops"
	"floodgate/capstone/session"
	"floodgate/capstone/store"
	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// serveUntil serves b on a new listener until stop is called; stop waits for
// Serve to return.
func serveUntil(t *testing.T, b *Broker) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- b.Serve(ctx, ln) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		b.Shutdown()
		cancel()
		select {
		case err := <-served:
			require.NoError(t, err)
		case <-time.After(wait):
			t.Error("Serve did not return")
		}
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// With a store (bbolt), a broker restarted on the same file still has the
// persistent session and its subscription, resends the unacknowledged QoS 1
// message with DUP and its packet id [MQTT-4.4.0-1], and keeps the retained
// message.
func TestPersist_RestartKeepsSessionSubscriptionsInflightRetained(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "floodgate.db"), store.Options{})
	require.NoError(t, err)
	defer st.Close()

	b1, err := New(Config{Store: st, Engine: testEngine})
	require.NoError(t, err)
	addr, stop := serveUntil(t, b1)
	c, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "dev"})
	c.send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "p/#", QoS: 1}}})
	require.IsType(t, &mqtt.SubAck{}, c.next(t))
	pub := connectV3(t, addr, "pub", true)
	pub.pub(t, "p/kept", 1, true, "retained")
	first := c.next(t).(*mqtt.Publish) // not acknowledged
	pub.Disconnect(0)
	stop()
	c.nc.Close()

	b2, err := New(Config{Store: st, Engine: testEngine})
	require.NoError(t, err)
	addr, _ = serveUntil(t, b2)
	c, ack := connectRaw(t, addr, &mqtt.Connect{ClientID: "dev"})
	assert.True(t, ack.SessionPresent, "the session survived the restart")
	again := c.next(t).(*mqtt.Publish)
	assert.True(t, again.Dup)
	assert.Equal(t, first.PacketID, again.PacketID)
	assert.Equal(t, "retained", string(again.Payload))
	c.send(t, &mqtt.PubAck{PacketID: again.PacketID})

	pub = connectV3(t, addr, "pub", true)
	pub.pub(t, "p/new", 1, false, "after restart")
	m := c.next(t).(*mqtt.Publish)
	assert.Equal(t, "after restart", string(m.Payload), "the subscription survived")
	c.send(t, &mqtt.PubAck{PacketID: m.PacketID})

	late := connectV3(t, addr, "late", true)
	late.sub(t, "p/kept", 0)
	assert.Equal(t, "retained", next(t, late.msgs).payload, "the retained message survived")
}

// A clean session is not kept: after a restart it is gone.
func TestPersist_CleanSessionNotKept(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	b1, err := New(Config{Store: st, Engine: testEngine})
	require.NoError(t, err)
	addr, stop := serveUntil(t, b1)
	c := connectV3(t, addr, "temp", true)
	c.sub(t, "x", 1)
	c.Disconnect(0)
	stop()
	sessions, err := st.Sessions()
	require.NoError(t, err)
	assert.Empty(t, sessions)
}

// gatedStore wraps a Store: Apply counts transactions, waits while the gate
// is shut, and fails while fail is set.
type gatedStore struct {
	store.Store
	entered chan struct{} // one value per Apply, before it waits at the gate

	mu      sync.Mutex
	gate    chan struct{} // nil: open
	fail    error
	applies int
}

func newGatedStore() *gatedStore {
	return &gatedStore{Store: store.NewMemory(), entered: make(chan struct{}, 1000)}
}

func (g *gatedStore) Apply(cs []store.Change) error {
	g.entered <- struct{}{}
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.applies++
	if g.fail != nil {
		return g.fail
	}
	return g.Store.Apply(cs)
}

// shut closes the gate: the next transaction, and every one after it until
// open, waits there. It first waits for w to be idle, so that no
// transaction is under way as the gate closes: a CONNACK does not wait for
// its session's record to commit, so the writer may still be applying the
// records of the connections a test just made. One such transaction could
// otherwise pass entered before the drain below and then find the gate
// shut (the test's <-entered waits for a transaction that never starts),
// or reach entered after the drain (the test takes it for its own).
func (g *gatedStore) shut(w *store.Writer) {
	w.Flush()
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
	for len(g.entered) > 0 { // forget the transactions already through
		<-g.entered
	}
}

func (g *gatedStore) open() {
	g.mu.Lock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
	g.mu.Unlock()
}

func (g *gatedStore) setFail(err error) {
	g.mu.Lock()
	g.fail = err
	g.mu.Unlock()
}

// pingThen sends p then PINGREQ and returns the first packet that comes
// back. PINGRESP is never held, and the broker handles a connection's
// packets in order, so a PINGRESP first means p's answer was not sent
// before p was handled.
func pingThen(t *testing.T, c *raw, p mqtt.Packet) mqtt.Packet {
	t.Helper()
	c.send(t, p)
	c.send(t, &mqtt.PingReq{})
	return c.next(t)
}

// Every acknowledgement that confirms a store change waits for its commit:
// with the store's writer stuck in a transaction, PUBACK, PUBREC, PUBCOMP
// and SUBACK do not come (PINGRESP overtakes them); once it commits, they
// do, in order.
func TestPersist_AckWaitsForCommit(t *testing.T) {
	st := newGatedStore()
	b, err := New(Config{Store: st, Engine: testEngine})
	require.NoError(t, err)
	addr, stop := serveUntil(t, b)
	defer stop()
	defer st.open() // first, should the test fail with the gate shut
	sub, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "sub", KeepAlive: 0})
	sub.send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "t/#", QoS: 2}}})
	require.IsType(t, &mqtt.SubAck{}, sub.next(t))
	pub, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "pub", Version: mqtt.V5,
		Properties: mqtt.Properties{SessionExpiry: 300}})

	for _, step := range []struct {
		name string
		send mqtt.Packet
		want mqtt.Packet
	}{
		{"PUBACK", &mqtt.Publish{QoS: 1, PacketID: 10, Topic: []byte("t/1"), Payload: []byte("one")}, &mqtt.PubAck{PacketID: 10}},
		{"PUBREC", &mqtt.Publish{QoS: 2, PacketID: 11, Topic: []byte("t/2"), Payload: []byte("two")}, &mqtt.PubRec{PacketID: 11}},
		{"PUBCOMP", &mqtt.PubRel{PacketID: 11}, &mqtt.PubComp{PacketID: 11}},
		{"SUBACK", &mqtt.Subscribe{PacketID: 12, Subscriptions: []mqtt.Subscription{{Filter: "x", QoS: 1}}},
			&mqtt.SubAck{PacketID: 12, ReasonCodes: []mqtt.ReasonCode{1}}},
		{"retained PUBACK", &mqtt.Publish{QoS: 1, PacketID: 13, Retain: true, Topic: []byte("r"), Payload: []byte("kept")},
			&mqtt.PubAck{PacketID: 13, ReasonCode: mqtt.NoMatchingSubscribers}},
	} {
		st.shut(b.w)
		got := pingThen(t, pub, step.send)
		require.IsType(t, &mqtt.PingResp{}, got, "%s sent before its change committed", step.name)
		<-st.entered // the change is in a transaction, held at the gate
		st.open()
		assert.Equal(t, step.want, pub.next(t), step.name)
	}
	assert.Zero(t, counter(b, "store_error"))
}

// A change that fails to commit is never acknowledged: the publisher's
// connection is closed instead (a 5.0 client hears DISCONNECT 0x80
// Unspecified error, a 3.1.1 client sees the socket close), counted
// "store_error" and "disconnect_store_error". The client resends the
// unacknowledged PUBLISH when it reconnects, and then it is acknowledged.
func TestPersist_StoreErrorWithholdsAck(t *testing.T) {
	for _, v := range []mqtt.Version{mqtt.V5, mqtt.V311} {
		t.Run(v.String(), func(t *testing.T) {
			st := newGatedStore()
			b, err := New(Config{Store: st, Engine: testEngine})
			require.NoError(t, err)
			addr, stop := serveUntil(t, b)
			defer stop()
			st.setFail(errors.New("disk on fire"))
			pub, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "pub", Version: v, CleanStart: true})
			m := &mqtt.Publish{QoS: 1, PacketID: 7, Retain: true, Topic: []byte("r"), Payload: []byte("x")}
			pub.send(t, m)
			var got []mqtt.Packet
			for {
				_ = pub.nc.SetReadDeadline(time.Now().Add(wait))
				p, err := pub.r.ReadPacket()
				var ne net.Error
				require.False(t, errors.As(err, &ne) && ne.Timeout(), "the broker did not close the connection")
				if err != nil {
					break
				}
				got = append(got, p)
			}
			if v == mqtt.V5 {
				assert.Equal(t, []mqtt.Packet{&mqtt.Disconnect{ReasonCode: mqtt.UnspecifiedError}}, got)
			} else {
				assert.Empty(t, got, "no PUBACK")
			}
			assert.Positive(t, counter(b, "store_error"))
			assert.Equal(t, uint64(1), counter(b, "disconnect_store_error"))

			st.setFail(nil)
			pub, _ = connectRaw(t, addr, &mqtt.Connect{ClientID: "pub", Version: v, CleanStart: true})
			m.Dup = true
			pub.send(t, m)
			assert.IsType(t, &mqtt.PubAck{}, pub.next(t), "the resent PUBLISH is acknowledged")
			retained, err := st.Retained()
			require.NoError(t, err)
			assert.Len(t, retained, 1)
		})
	}
}

// While the store's queue is full, new QoS 1/2 publications are refused
// rather than blocking the connection's loop: 0x97 Quota exceeded in the
// PUBACK or PUBREC of a 5.0 client, a disconnect for a 3.1.1 one (it has
// no way to hear a refusal), QoS 0 retained dropped; each counted
// "store_busy". Nothing refused reaches a subscriber.
func TestPersist_BusyStoreRefuses(t *testing.T) {
	st := newGatedStore()
	b, err := New(Config{Store: st, Engine: testEngine, StoreQueue: 1})
	require.NoError(t, err)
	addr, stop := serveUntil(t, b)
	defer stop()
	defer st.open()
	pub, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "pub", Version: mqtt.V5, CleanStart: true})
	st.shut(b.w)
	pub.send(t, &mqtt.Publish{Retain: true, Topic: []byte("r/1"), Payload: []byte("a")})
	<-st.entered                                                                         // the writer is in a transaction, held at the gate
	pub.send(t, &mqtt.Publish{Retain: true, Topic: []byte("r/2"), Payload: []byte("b")}) // queued: the queue is full
	pub.send(t, &mqtt.Publish{Retain: true, Topic: []byte("r/3"), Payload: []byte("c")}) // dropped
	pub.send(t, &mqtt.Publish{QoS: 1, PacketID: 1, Topic: []byte("q"), Payload: []byte("d")})
	assert.Equal(t, &mqtt.PubAck{PacketID: 1, ReasonCode: mqtt.QuotaExceeded}, pub.next(t))
	pub.send(t, &mqtt.Publish{QoS: 2, PacketID: 2, Topic: []byte("q"), Payload: []byte("e")})
	assert.Equal(t, &mqtt.PubRec{PacketID: 2, ReasonCode: mqtt.QuotaExceeded}, pub.next(t))

	old, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "old", CleanStart: true})
	old.send(t, &mqtt.Publish{QoS: 1, PacketID: 3, Topic: []byte("q"), Payload: []byte("f")})
	assert.Nil(t, old.closed(t), "3.1.1: closed, no PUBACK")
	assert.Equal(t, uint64(1), counter(b, "disconnect_store_busy"))
	assert.Equal(t, uint64(4), counter(b, "store_busy"))

	st.open()
	pub.send(t, &mqtt.PingReq{})
	require.IsType(t, &mqtt.PingResp{}, pub.next(t))
	stop()
	retained, err := st.Retained()
	require.NoError(t, err)
	var topics []string
	for _, m := range retained {
		topics = append(topics, m.Topic)
	}
	assert.Equal(t, []string{"r/1", "r/2"}, topics, "the queued changes committed; the refused one was never made")
}

// Shutting down commits what was queued: a message routed to an offline
// persistent session while the store's writer is stuck is in the store once
// Serve has returned, and so is the session's record.
func TestPersist_ShutdownCommitsQueued(t *testing.T) {
	st := newGatedStore()
	b, err := New(Config{Store: st, Engine: testEngine})
	require.NoError(t, err)
	addr, stop := serveUntil(t, b)
	t.Cleanup(st.open) // before stop, should the test fail with the gate shut
	sub, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "sub", KeepAlive: 0})
	sub.send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "t", QoS: 1}}})
	require.IsType(t, &mqtt.SubAck{}, sub.next(t))
	sub.send(t, &mqtt.Disconnect{})
	assert.Nil(t, sub.closed(t))

	pub, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "pub", CleanStart: true})
	st.shut(b.w)
	got := pingThen(t, pub, &mqtt.Publish{QoS: 1, PacketID: 1, Topic: []byte("t"), Payload: []byte("keep me")})
	require.IsType(t, &mqtt.PingResp{}, got)
	<-st.entered
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	st.open()
	<-stopped
	fs, err := st.InFlight("sub")
	require.NoError(t, err)
	require.Len(t, fs, 1)
	assert.Equal(t, "keep me", string(fs[0].Message.Payload))
	sess, err := st.LoadSession("sub")
	require.NoError(t, err)
	assert.Len(t, sess.Subscriptions, 1)
}

// A clean start drops the stored session with its in-flight messages, and
// the session's later changes are not written: nothing of it is left in
// the store.
func TestPersist_CleanStartDeletesStored(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	b, err := New(Config{Store: st, Engine: testEngine})
	require.NoError(t, err)
	addr, stop := serveUntil(t, b)
	sub, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "sub", KeepAlive: 0})
	sub.send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "t", QoS: 1}}})
	require.IsType(t, &mqtt.SubAck{}, sub.next(t))
	sub.send(t, &mqtt.Disconnect{})
	assert.Nil(t, sub.closed(t))
	pub, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "pub", CleanStart: true})
	pub.send(t, &mqtt.Publish{QoS: 1, PacketID: 1, Topic: []byte("t"), Payload: []byte("queued")})
	require.IsType(t, &mqtt.PubAck{}, pub.next(t))
	fs, err := st.InFlight("sub")
	require.NoError(t, err)
	require.Len(t, fs, 1, "acknowledged, so stored")

	sub, ack := connectRaw(t, addr, &mqtt.Connect{ClientID: "sub", CleanStart: true})
	assert.False(t, ack.SessionPresent)
	sub.send(t, &mqtt.Subscribe{PacketID: 2, Subscriptions: []mqtt.Subscription{{Filter: "t", QoS: 1}}})
	require.IsType(t, &mqtt.SubAck{}, sub.next(t))
	pub.send(t, &mqtt.Publish{QoS: 1, PacketID: 2, Topic: []byte("t"), Payload: []byte("live")})
	require.IsType(t, &mqtt.PubAck{}, pub.next(t))
	stop()
	fs, err = st.InFlight("sub")
	require.NoError(t, err)
	assert.Empty(t, fs, "the dropped session's messages are gone, the clean one's never written")
	sessions, err := st.Sessions()
	require.NoError(t, err)
	assert.Empty(t, sessions)
}

// Group commit through the broker: while one transaction is held at the
// gate, 20 publishers each publish a retained QoS 1 message (each answered
// PINGRESP at once, so the connections are served while the store is
// stuck, on either engine); when the gate opens, one more transaction
// commits all 20 and every publisher gets its PUBACK.
func TestPersist_GroupCommitCoalesces(t *testing.T) {
	st := newGatedStore()
	b, err := New(Config{Store: st, Engine: testEngine})
	require.NoError(t, err)
	addr, stop := serveUntil(t, b)
	defer stop()
	defer st.open()
	first, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "first", CleanStart: true})
	pubs := make([]*raw, 20)
	for i := range pubs {
		pubs[i], _ = connectRaw(t, addr, &mqtt.Connect{ClientID: fmt.Sprintf("p%d", i), CleanStart: true})
	}
	st.shut(b.w)
	st.mu.Lock()
	before := st.applies
	st.mu.Unlock()
	first.send(t, &mqtt.Publish{QoS: 1, PacketID: 1, Retain: true, Topic: []byte("r/first"), Payload: []byte("x")})
	<-st.entered // held at the gate
	for i, c := range pubs {
		got := pingThen(t, c, &mqtt.Publish{QoS: 1, PacketID: 1, Retain: true,
			Topic: fmt.Appendf(nil, "r/%d", i), Payload: []byte("x")})
		require.IsType(t, &mqtt.PingResp{}, got, "publisher %d", i)
	}
	st.open()
	require.IsType(t, &mqtt.PubAck{}, first.next(t))
	for _, c := range pubs {
		require.IsType(t, &mqtt.PubAck{}, c.next(t))
	}
	st.mu.Lock()
	assert.Equal(t, 2, st.applies-before, "transactions: the held one, then one for the 20 that queued behind it")
	st.mu.Unlock()
	retained, err := st.Retained()
	require.NoError(t, err)
	assert.Len(t, retained, 21)
}

// The PUBREL a reconnecting subscriber is sent again waits for the store
// as the first one did: its PUBREC's change (the message is released) may
// still be queued when the client comes back. Sent at once, it lets the
// client complete (PUBCOMP) a message that a crash before that commit
// would bring back as a PUBLISH the client takes for a new one: a second
// delivery of a QoS 2 message. The record is written again, so the PUBREL
// waits for a durable one even if the first write failed.
func TestPersist_PubRelResentOnReconnectWaitsForCommit(t *testing.T) {
	st := newGatedStore()
	b, err := New(Config{Store: st, Engine: testEngine})
	require.NoError(t, err)
	addr, stop := serveUntil(t, b)
	defer stop()
	defer st.open()
	sub, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "sub", KeepAlive: 0})
	sub.send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "t", QoS: 2}}})
	require.IsType(t, &mqtt.SubAck{}, sub.next(t))
	pub, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "pub", CleanStart: true})
	pub.send(t, &mqtt.Publish{QoS: 2, PacketID: 1, Topic: []byte("t"), Payload: []byte("once")})
	require.IsType(t, &mqtt.PubRec{}, pub.next(t))
	got, ok := sub.next(t).(*mqtt.Publish)
	require.True(t, ok, "the subscriber gets the PUBLISH")

	st.shut(b.w)
	require.IsType(t, &mqtt.PingResp{}, pingThen(t, sub, &mqtt.PubRec{PacketID: got.PacketID}),
		"PUBREL waits for the PUBREC's change")
	<-st.entered // that change is in a transaction, held at the gate
	sub.send(t, &mqtt.Disconnect{})
	assert.Nil(t, sub.closed(t))

	sub, ack := connectRaw(t, addr, &mqtt.Connect{ClientID: "sub", KeepAlive: 0})
	require.True(t, ack.SessionPresent)
	sub.send(t, &mqtt.PingReq{})
	require.IsType(t, &mqtt.PingResp{}, sub.next(t), "the PUBREL resent on reconnect waits for the commit too")
	st.open()
	assert.Equal(t, &mqtt.PubRel{PacketID: got.PacketID}, sub.next(t))
	sub.send(t, &mqtt.PubComp{PacketID: got.PacketID})
	sub.send(t, &mqtt.PingReq{})
	require.IsType(t, &mqtt.PingResp{}, sub.next(t))
	assert.Zero(t, counter(b, "store_error"))
}

// A PUBREL whose release failed to commit is withheld its PUBCOMP and the
// connection closed; the client resends PUBREL when it comes back. The
// broker has already forgotten the packet id in memory, but the store has
// not: the resent PUBREL deletes the stored id again, and its PUBCOMP
// waits for that. Otherwise the stale id would come back at a restart and
// the client's next QoS 2 PUBLISH with it would be taken for a resend and
// never routed [MQTT-4.3.3-9]: an acknowledged message lost.
func TestPersist_ResentPubRelDeletesStoredID(t *testing.T) {
	st := newGatedStore()
	b, err := New(Config{Store: st, Engine: testEngine})
	require.NoError(t, err)
	addr, stop := serveUntil(t, b)
	defer stop()
	defer st.open()
	cp := &mqtt.Connect{ClientID: "pub", Version: mqtt.V5, Properties: mqtt.Properties{SessionExpiry: 300}}
	cp.Properties.Mark(mqtt.PropSessionExpiry)
	pub, _ := connectRaw(t, addr, cp)
	pub.send(t, &mqtt.Publish{QoS: 2, PacketID: 5, Topic: []byte("t"), Payload: []byte("x")})
	require.Equal(t, &mqtt.PubRec{PacketID: 5, ReasonCode: mqtt.NoMatchingSubscribers}, pub.next(t))
	fs, err := st.InFlight("pub")
	require.NoError(t, err)
	require.Len(t, fs, 1, "the inbound id is stored")

	st.setFail(errors.New("disk on fire"))
	pub.send(t, &mqtt.PubRel{PacketID: 5})
	assert.Equal(t, &mqtt.Disconnect{ReasonCode: mqtt.UnspecifiedError}, pub.closed(t), "no PUBCOMP")
	st.setFail(nil)

	pub, ack := connectRaw(t, addr, cp)
	require.True(t, ack.SessionPresent)
	st.shut(b.w)
	require.IsType(t, &mqtt.PingResp{}, pingThen(t, pub, &mqtt.PubRel{PacketID: 5}),
		"PUBCOMP waits for the id's delete")
	<-st.entered
	st.open()
	assert.IsType(t, &mqtt.PubComp{}, pub.next(t))
	fs, err = st.InFlight("pub")
	require.NoError(t, err)
	assert.Empty(t, fs, "the stored id is gone")
}

// fillStoreQueue fills b's store queue (StoreQueue 1): pub's retained
// r/1 holds the writer at st's gate, and r/2 waits behind it.
func fillStoreQueue(t *testing.T, b *Broker, st *gatedStore, pub *raw) {
	t.Helper()
	st.shut(b.w)
	pub.send(t, &mqtt.Publish{Retain: true, Topic: []byte("r/1"), Payload: []byte("a")})
	<-st.entered // the writer is in a transaction, held at the gate
	pub.send(t, &mqtt.Publish{Retain: true, Topic: []byte("r/2"), Payload: []byte("b")})
	pub.send(t, &mqtt.PingReq{})
	require.IsType(t, &mqtt.PingResp{}, pub.next(t)) // r/2 is queued: the queue is full
}

// While the store's queue is full, SUBSCRIBE is refused too (0x97 Quota
// exceeded for 5.0, 0x80 for 3.1.1, counted "store_busy"): each one would
// queue the session's whole record, so a client could grow the queue
// without bound by subscribing. An UNSUBSCRIBE that removes nothing
// queues nothing.
func TestPersist_BusyStoreRefusesSubscribe(t *testing.T) {
	st := newGatedStore()
	b, err := New(Config{Store: st, Engine: testEngine, StoreQueue: 1})
	require.NoError(t, err)
	addr, stop := serveUntil(t, b)
	defer stop()
	defer st.open()
	cp := &mqtt.Connect{ClientID: "s5", Version: mqtt.V5, Properties: mqtt.Properties{SessionExpiry: 300}}
	cp.Properties.Mark(mqtt.PropSessionExpiry)
	s5, _ := connectRaw(t, addr, cp)
	s3, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "s3", KeepAlive: 0})
	pub, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "pub", CleanStart: true})
	fillStoreQueue(t, b, st, pub)

	before := b.w.Last()
	s5.send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "a", QoS: 1}, {Filter: "b"}}})
	assert.Equal(t, &mqtt.SubAck{PacketID: 1, ReasonCodes: []mqtt.ReasonCode{mqtt.QuotaExceeded, mqtt.QuotaExceeded}},
		s5.next(t))
	s3.send(t, &mqtt.Subscribe{PacketID: 2, Subscriptions: []mqtt.Subscription{{Filter: "a", QoS: 1}}})
	assert.Equal(t, &mqtt.SubAck{PacketID: 2, ReasonCodes: []mqtt.ReasonCode{0x80}}, s3.next(t))
	s5.send(t, &mqtt.Unsubscribe{PacketID: 3, Filters: []string{"a"}})
	assert.Equal(t, &mqtt.UnsubAck{PacketID: 3, ReasonCodes: []mqtt.ReasonCode{mqtt.NoSubscriptionExisted}}, s5.next(t))
	assert.Equal(t, before, b.w.Last(), "nothing was queued")
	assert.Equal(t, uint64(2), counter(b, "store_busy"))
	b.mu.Lock()
	e5, e3 := b.sessions["s5"], b.sessions["s3"]
	b.mu.Unlock()
	assert.Empty(t, e5.st.Subscriptions(), "no subscription was made")
	assert.Empty(t, e3.st.Subscriptions(), "no subscription was made")
}

// While the store's queue is full, a CONNECT whose session the store
// would keep is refused (0x97; 3.1.1: 3 Server unavailable) and queues
// nothing, so a reconnect loop cannot grow the queue; a session that ends
// with its connection is still accepted.
func TestPersist_BusyStoreRefusesPersistentConnect(t *testing.T) {
	st := newGatedStore()
	m := ops.NewMetrics()
	b, err := New(Config{Store: st, Engine: testEngine, StoreQueue: 1, Metrics: m})
	require.NoError(t, err)
	addr, stop := serveUntil(t, b)
	defer stop()
	defer st.open()
	pub, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "pub", CleanStart: true})
	fillStoreQueue(t, b, st, pub)

	before := b.w.Last()
	cp := &mqtt.Connect{ClientID: "p5", Version: mqtt.V5, CleanStart: true, Properties: mqtt.Properties{SessionExpiry: 300}}
	cp.Properties.Mark(mqtt.PropSessionExpiry)
	c5, ack := connectRaw(t, addr, cp)
	assert.Equal(t, mqtt.QuotaExceeded, ack.ReasonCode)
	assert.Nil(t, c5.closed(t))
	c3, ack := connectRaw(t, addr, &mqtt.Connect{ClientID: "p3"}) // 3.1.1, Clean Session 0
	assert.Equal(t, byte(3), mqtt.ReturnCodeV311(ack.ReasonCode))
	assert.Nil(t, c3.closed(t))
	_, ack = connectRaw(t, addr, &mqtt.Connect{ClientID: "clean", Version: mqtt.V5, CleanStart: true})
	assert.Equal(t, mqtt.Success, ack.ReasonCode, "a session that ends with its connection writes nothing")
	assert.Equal(t, before, b.w.Last(), "nothing was queued")
	assert.Equal(t, uint64(2), counter(b, "refused_"+session.ReasonStoreBusy))
	assert.Equal(t, 2.0, testutil.ToFloat64(m.ConnectionsRefused.WithLabelValues(ops.RefuseStore)))
	b.mu.Lock()
	_, has5 := b.sessions["p5"]
	_, has3 := b.sessions["p3"]
	b.mu.Unlock()
	assert.False(t, has5 || has3, "no session was opened")
}

// A SUBSCRIBE's retained messages wait with its SUBACK for the session's
// record to commit. If the client reconnects to its session meanwhile, the
// SUBACK goes to the old connection and is lost with it, but the
// subscription is the session's: the retained messages it asked for go to
// the new connection (they were dropped, and the client never resubscribes).
func TestPersist_HeldSubscribeRetainedGoToNewConnection(t *testing.T) {
	st := newGatedStore()
	b, err := New(Config{Store: st, Engine: testEngine})
	require.NoError(t, err)
	addr, stop := serveUntil(t, b)
	defer stop()
	defer st.open()
	pub, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "pub", CleanStart: true})
	pub.send(t, &mqtt.Publish{QoS: 1, PacketID: 1, Retain: true, Topic: []byte("r"), Payload: []byte("kept")})
	require.IsType(t, &mqtt.PubAck{}, pub.next(t))

	sub, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "sub", KeepAlive: 0})
	st.shut(b.w)
	require.IsType(t, &mqtt.PingResp{}, pingThen(t, sub,
		&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "r", QoS: 1}}}))
	<-st.entered // the session's record is in a transaction, held at the gate
	sub.send(t, &mqtt.Disconnect{})
	assert.Nil(t, sub.closed(t))
	sub, ack := connectRaw(t, addr, &mqtt.Connect{ClientID: "sub", KeepAlive: 0})
	require.True(t, ack.SessionPresent)
	st.open()
	b.w.Flush() // the held SUBACK is decided: its retained messages are out
	got, ok := pingThen(t, sub, &mqtt.PingReq{}).(*mqtt.Publish)
	require.True(t, ok, "the retained message comes to the new connection")
	assert.Equal(t, "kept", string(got.Payload))
	assert.True(t, got.Retain)
}
