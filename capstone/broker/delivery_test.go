//go:build floodgate.solution

package broker

import (
	"testing"
	"time"

	"floodgate/capstone/session"
	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ---- QoS ----

// [MQTT-3.8.4-8 (3.1.1: MQTT-3.8.4-6)] A message is delivered at the lower
// of its QoS and the subscription's.
func TestQoS_DowngradedToSubscription(t *testing.T) {
	_, addr := startBroker(t, Config{})
	c := connectV3(t, addr, "sub", true)
	c.sub(t, "q/#", 0)
	c.pub(t, "q/1", 1, false, "one")
	m := next(t, c.msgs)
	assert.Equal(t, byte(0), m.qos)
	c2 := connectV3(t, addr, "sub2", true)
	c2.sub(t, "q/#", 2)
	c2.pub(t, "q/2", 2, false, "two")
	assert.Equal(t, byte(2), next(t, c2.msgs).qos)
}

// [MQTT-4.3.2-2] QoS 1: PUBACK after the message is routed.
func TestQoS1_PubackAfterRouting(t *testing.T) {
	_, addr := startBroker(t, Config{})
	c, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "q1", CleanStart: true})
	c.send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "a", QoS: 1}}})
	require.IsType(t, &mqtt.SubAck{}, c.next(t))
	c.send(t, &mqtt.Publish{QoS: 1, PacketID: 7, Topic: []byte("a"), Payload: []byte("x")})
	var gotAck, gotPub bool
	for !gotAck || !gotPub {
		switch p := c.next(t).(type) {
		case *mqtt.PubAck:
			assert.Equal(t, uint16(7), p.PacketID)
			gotAck = true
		case *mqtt.Publish:
			assert.Equal(t, "x", string(p.Payload))
			assert.NotZero(t, p.PacketID)
			gotPub = true
		}
	}
}

// [MQTT-4.3.3-2] [MQTT-4.3.3-9] [MQTT-4.3.3-11] QoS 2 from a client:
// PUBREC; a resent PUBLISH with the same id is not routed again; PUBREL
// gets PUBCOMP.
func TestQoS2_InboundExactlyOnce(t *testing.T) {
	_, addr := startBroker(t, Config{})
	sub := connectV3(t, addr, "watch", true)
	sub.sub(t, "q2", 2)
	c, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "q2pub", CleanStart: true})
	pub := &mqtt.Publish{QoS: 2, PacketID: 9, Topic: []byte("q2"), Payload: []byte("once")}
	c.send(t, pub)
	require.Equal(t, uint16(9), c.next(t).(*mqtt.PubRec).PacketID)
	pub.Dup = true
	c.send(t, pub)
	require.Equal(t, uint16(9), c.next(t).(*mqtt.PubRec).PacketID)
	c.send(t, &mqtt.PubRel{PacketID: 9})
	require.Equal(t, uint16(9), c.next(t).(*mqtt.PubComp).PacketID)
	assert.Equal(t, "once", next(t, sub.msgs).payload)
	sub.pub(t, "q2", 0, false, "marker")
	assert.Equal(t, "marker", next(t, sub.msgs).payload, "the resent PUBLISH was routed twice")
}

// [MQTT-4.3.3-4] QoS 2 to a client: PUBLISH, PUBREC, PUBREL, PUBCOMP.
func TestQoS2_OutboundFlow(t *testing.T) {
	_, addr := startBroker(t, Config{})
	c, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "q2sub", CleanStart: true})
	c.send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "o", QoS: 2}}})
	require.IsType(t, &mqtt.SubAck{}, c.next(t))
	pub := connectV3(t, addr, "p", true)
	pub.pub(t, "o", 2, false, "x")
	p := c.next(t).(*mqtt.Publish)
	require.Equal(t, mqtt.ExactlyOnce, p.QoS)
	c.send(t, &mqtt.PubRec{PacketID: p.PacketID})
	rel, ok := c.next(t).(*mqtt.PubRel)
	require.True(t, ok, "PUBREL expected")
	assert.Equal(t, p.PacketID, rel.PacketID)
	c.send(t, &mqtt.PubComp{PacketID: p.PacketID})
	c.send(t, &mqtt.PingReq{})
	require.IsType(t, &mqtt.PingResp{}, c.next(t))
}

// [MQTT-4.4.0-1] [MQTT-3.3.1-1] Unacknowledged messages are resent with DUP
// and their packet id when a persistent session resumes.
func TestQoS1_RedeliveredWithDup(t *testing.T) {
	_, addr := startBroker(t, Config{})
	c, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "dupe"})
	c.send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "d", QoS: 1}}})
	require.IsType(t, &mqtt.SubAck{}, c.next(t))
	pub := connectV3(t, addr, "p", true)
	pub.pub(t, "d", 1, false, "again")
	first := c.next(t).(*mqtt.Publish)
	assert.False(t, first.Dup)
	c.nc.Close() // no PUBACK, no DISCONNECT

	c, ack := connectRaw(t, addr, &mqtt.Connect{ClientID: "dupe"})
	require.True(t, ack.SessionPresent)
	again := c.next(t).(*mqtt.Publish)
	assert.True(t, again.Dup)
	assert.Equal(t, first.PacketID, again.PacketID)
	assert.Equal(t, "again", string(again.Payload))
}

// [MQTT-3.3.4-7] The broker never has more unacknowledged QoS 1 messages
// out than the client's Receive Maximum; the rest follow as acks come.
func TestInflight_ClientReceiveMaximum(t *testing.T) {
	_, addr := startBroker(t, Config{})
	cp := &mqtt.Connect{Version: mqtt.V5, ClientID: "slowack", CleanStart: true}
	cp.Properties.ReceiveMaximum = 2
	c, _ := connectRaw(t, addr, cp)
	c.send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "w", QoS: 1}}})
	require.IsType(t, &mqtt.SubAck{}, c.next(t))
	pub := connectV3(t, addr, "p", true)
	for range 4 {
		pub.pub(t, "w", 1, false, "m")
	}
	p1 := c.next(t).(*mqtt.Publish)
	p2 := c.next(t).(*mqtt.Publish)
	c.send(t, &mqtt.PingReq{})
	require.IsType(t, &mqtt.PingResp{}, c.next(t), "a third PUBLISH came before any PUBACK")
	c.send(t, &mqtt.PubAck{PacketID: p1.PacketID})
	p3 := c.next(t).(*mqtt.Publish)
	c.send(t, &mqtt.PubAck{PacketID: p2.PacketID})
	c.send(t, &mqtt.PubAck{PacketID: p3.PacketID})
	require.IsType(t, &mqtt.Publish{}, c.next(t))
}

// [MQTT-3.3.4-9] More QoS 2 PUBLISH in flight than the broker's Receive
// Maximum: DISCONNECT 0x93.
func TestInflight_ReceiveMaximumExceeded(t *testing.T) {
	b, addr := startBroker(t, Config{Session: session.Config{ReceiveMaximum: 2}})
	c, _ := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "flood", CleanStart: true})
	for id := uint16(1); id <= 3; id++ {
		c.send(t, &mqtt.Publish{QoS: 2, PacketID: id, Topic: []byte("x"), Payload: []byte("x")})
	}
	d := c.closed(t)
	require.NotNil(t, d)
	assert.Equal(t, mqtt.ReceiveMaximumExceeded, d.ReasonCode)
	assert.Equal(t, uint64(1), counter(b, "disconnect_receive_maximum_exceeded"))
}

// 5.0: PUBACK says 0x10 No matching subscribers.
func TestQoS1_NoMatchingSubscribers5(t *testing.T) {
	_, addr := startBroker(t, Config{})
	c := connectV5(t, addr, "lonely", paho.Connect{CleanStart: true})
	r := c.pub(t, &paho.Publish{Topic: "nobody", QoS: 1, Payload: []byte("x")})
	assert.Equal(t, byte(mqtt.NoMatchingSubscribers), r.ReasonCode)
}

// ---- retained ----

// [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-9 (3.1.1: MQTT-3.3.1-8)] A
// retained message goes to new subscribers with RETAIN set; live messages
// to existing 3.1.1 subscribers have it clear.
func TestRetained_DeliveredOnSubscribe(t *testing.T) {
	_, addr := startBroker(t, Config{})
	pub := connectV3(t, addr, "p", true)
	live := connectV3(t, addr, "live", true)
	live.sub(t, "r/#", 1)
	pub.pub(t, "r/a", 1, true, "first")
	pub.pub(t, "r/a", 1, true, "latest")
	assert.False(t, next(t, live.msgs).retained, "live copy has RETAIN 0")
	next(t, live.msgs)
	c := connectV3(t, addr, "late", true)
	c.sub(t, "r/#", 1)
	m := next(t, c.msgs)
	assert.Equal(t, "latest", m.payload)
	assert.True(t, m.retained)
}

// [MQTT-3.3.1-10] [MQTT-3.3.1-11] An empty retained message clears the topic.
func TestRetained_EmptyPayloadClears(t *testing.T) {
	b, addr := startBroker(t, Config{})
	pub := connectV3(t, addr, "p", true)
	pub.pub(t, "r/x", 1, true, "soon gone")
	pub.pub(t, "r/x", 1, true, "")
	assert.Equal(t, 0, b.Router().RetainedCount())
	c := connectV3(t, addr, "late", true)
	c.sub(t, "r/#", 1)
	pub.pub(t, "r/marker", 1, false, "marker")
	assert.Equal(t, "marker", next(t, c.msgs).payload)
}

// ---- wills ----

// [MQTT-3.1.2-8] A connection that ends without DISCONNECT publishes its will.
func TestWill_PublishedOnDrop(t *testing.T) {
	_, addr := startBroker(t, Config{})
	w := connectV3(t, addr, "watcher", true)
	w.sub(t, "wills/#", 1)
	c, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "dying", CleanStart: true,
		Will: &mqtt.Will{Topic: "wills/dying", Payload: []byte("gone"), QoS: 1}})
	c.nc.Close()
	m := next(t, w.msgs)
	assert.Equal(t, "wills/dying", m.topic)
	assert.Equal(t, "gone", m.payload)
}

// [MQTT-3.1.2-10] DISCONNECT discards the will; 5.0 reason 0x04 keeps it.
func TestWill_DisconnectDiscards(t *testing.T) {
	_, addr := startBroker(t, Config{})
	w := connectV3(t, addr, "watcher", true)
	w.sub(t, "wills/#", 1)
	c, _ := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "polite", CleanStart: true,
		Will: &mqtt.Will{Topic: "wills/polite", Payload: []byte("no")}})
	c.send(t, &mqtt.Disconnect{})
	c.closed(t)
	c, _ = connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "asks", CleanStart: true,
		Will: &mqtt.Will{Topic: "wills/asks", Payload: []byte("yes")}})
	c.send(t, &mqtt.Disconnect{ReasonCode: mqtt.DisconnectWithWillMessage})
	c.closed(t)
	assert.Equal(t, "wills/asks", next(t, w.msgs).topic, "only the 0x04 will")
}

// [MQTT-3.1.3-9] A will with a delay is not sent if the client reconnects
// within it.
func TestWill_DelayCancelledByReconnect(t *testing.T) {
	b, addr := startBroker(t, Config{})
	w := connectV3(t, addr, "watcher", true)
	w.sub(t, "wills/#", 1)
	will := &mqtt.Will{Topic: "wills/back", Payload: []byte("late")}
	will.Properties.WillDelay = 3600
	cp := &mqtt.Connect{Version: mqtt.V5, ClientID: "back", Will: will}
	cp.Properties.SessionExpiry = 3600
	c, _ := connectRaw(t, addr, cp)
	c.nc.Close()
	c, ack := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "back"})
	assert.True(t, ack.SessionPresent)
	w.pub(t, "wills/marker", 1, false, "marker")
	assert.Equal(t, "wills/marker", next(t, w.msgs).topic)
	assert.Zero(t, counter(b, "wills_published"))
}

// 5.0 section 3.1.3.2.2: a delayed will is sent when the session ends, even
// before its delay: here the session expiry is 0.
func TestWill_DelayedWillSentWhenSessionEnds(t *testing.T) {
	_, addr := startBroker(t, Config{})
	w := connectV3(t, addr, "watcher", true)
	w.sub(t, "wills/#", 1)
	will := &mqtt.Will{Topic: "wills/ends", Payload: []byte("now")}
	will.Properties.WillDelay = 3600
	c, _ := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "ends", CleanStart: true, Will: will})
	c.nc.Close()
	assert.Equal(t, "wills/ends", next(t, w.msgs).topic)
}

// [MQTT-3.1.3-9] with no reconnection, a delayed will is published when
// its Will Delay Interval (1 s here) has passed.
func TestWill_DelayFires(t *testing.T) {
	_, addr := startBroker(t, Config{})
	w := connectV3(t, addr, "watcher", true)
	w.sub(t, "wills/#", 1)
	will := &mqtt.Will{Topic: "wills/late", Payload: []byte("after a second")}
	will.Properties.WillDelay = 1
	cp := &mqtt.Connect{Version: mqtt.V5, ClientID: "late", Will: will}
	cp.Properties.SessionExpiry = 60
	c, _ := connectRaw(t, addr, cp)
	start := time.Now()
	c.nc.Close()
	m := next(t, w.msgs)
	assert.Equal(t, "after a second", m.payload)
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "the will came before its delay")
}

// MQTT 5.0 section 3.1.3.2.2: when the session expires (after 1 s here)
// before the will delay, the will is published then, and the session is
// gone.
func TestSession_ExpiryEndsSessionAndSendsWill(t *testing.T) {
	b, addr := startBroker(t, Config{})
	w := connectV3(t, addr, "watcher", true)
	w.sub(t, "wills/#", 1)
	will := &mqtt.Will{Topic: "wills/expired", Payload: []byte("session over")}
	will.Properties.WillDelay = 3600
	cp := &mqtt.Connect{Version: mqtt.V5, ClientID: "brief", Will: will}
	cp.Properties.SessionExpiry = 1
	c, _ := connectRaw(t, addr, cp)
	c.nc.Close()
	assert.Equal(t, "session over", next(t, w.msgs).payload)
	assert.Equal(t, uint64(1), counter(b, "sessions_expired"))
	_, ack := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "brief"})
	assert.False(t, ack.SessionPresent, "the session expired")
}
