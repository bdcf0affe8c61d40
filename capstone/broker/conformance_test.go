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

func u32(v uint32) *uint32 { return &v }
func u16(v uint16) *uint16 { return &v }

// ---- CONNECT ----

// [MQTT-3.1.0-1] The first packet from the client must be CONNECT.
func TestConnect_FirstPacketMustBeConnect(t *testing.T) {
	b, addr := startBroker(t, Config{})
	c := dialRaw(t, addr)
	c.send(t, &mqtt.PingReq{})
	c.closed(t)
	assert.Equal(t, uint64(1), counter(b, "disconnect_first_not_connect"))
}

// [MQTT-3.1.2-1] A wrong protocol name: the server closes without CONNACK.
func TestConnect_WrongProtocolNameClosesWithoutConnack(t *testing.T) {
	b, addr := startBroker(t, Config{})
	c := dialRaw(t, addr)
	// CONNECT, "MQTX", level 4, clean, keepalive 0, client id "x".
	c.write(t, []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 0, 0, 1, 'x'})
	assert.Nil(t, c.closed(t))
	assert.Equal(t, uint64(1), counter(b, "disconnect_protocol_name"))
}

// [MQTT-3.1.2-2] An unsupported protocol level gets CONNACK 0x01 and a close.
func TestConnect_UnsupportedLevelGetsConnack01(t *testing.T) {
	b, addr := startBroker(t, Config{})
	c := dialRaw(t, addr)
	c.write(t, []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 6, 2, 0, 0, 0, 1, 'x'})
	ack, ok := c.next(t).(*mqtt.Connack)
	require.True(t, ok)
	assert.Equal(t, byte(1), mqtt.ReturnCodeV311(ack.ReasonCode))
	c.closed(t)
	assert.Equal(t, uint64(1), counter(b, "disconnect_unsupported_version"))
}

// [MQTT-3.1.0-2] A second CONNECT is a protocol violation: 5.0 clients get
// DISCONNECT 0x82.
func TestConnect_SecondConnectIsProtocolError(t *testing.T) {
	b, addr := startBroker(t, Config{})
	c, ack := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "twice", CleanStart: true})
	require.Equal(t, mqtt.Success, ack.ReasonCode)
	c.send(t, &mqtt.Connect{Version: mqtt.V5, ClientID: "twice", CleanStart: true})
	d := c.closed(t)
	require.NotNil(t, d, "DISCONNECT expected")
	assert.Equal(t, mqtt.ProtocolError, d.ReasonCode)
	assert.Equal(t, uint64(1), counter(b, "disconnect_second_connect"))
}

// [MQTT-3.1.3-8] 3.1.1: an empty client id without Clean Session gets
// CONNACK 0x02 Identifier rejected.
func TestConnect_EmptyClientIDNeedsCleanSession311(t *testing.T) {
	_, addr := startBroker(t, Config{})
	_, ack := connectRaw(t, addr, &mqtt.Connect{ClientID: ""})
	assert.Equal(t, byte(2), mqtt.ReturnCodeV311(ack.ReasonCode))
}

// [MQTT-3.1.3-6] [MQTT-3.2.2-16] 5.0: an empty client id is assigned one,
// returned in Assigned Client Identifier.
func TestConnect_EmptyClientIDAssigned5(t *testing.T) {
	_, addr := startBroker(t, Config{})
	c := connectV5(t, addr, "", paho.Connect{CleanStart: true})
	require.NotNil(t, c.connack.Properties)
	assert.NotEmpty(t, c.connack.Properties.AssignedClientID)
}

// [MQTT-3.2.2-21] A Server Keep Alive caps the client's keepalive.
func TestConnect_ServerKeepAlive(t *testing.T) {
	_, addr := startBroker(t, Config{Session: session.Config{MaxKeepAlive: 30}})
	c := connectV5(t, addr, "ka", paho.Connect{CleanStart: true, KeepAlive: 300})
	require.NotNil(t, c.connack.Properties.ServerKeepAlive)
	assert.Equal(t, uint16(30), *c.connack.Properties.ServerKeepAlive)
}

// The CONNACK of a 5.0 client advertises the broker's limits.
func TestConnect_ConnackAdvertisesLimits(t *testing.T) {
	_, addr := startBroker(t, Config{Session: session.Config{ReceiveMaximum: 7, TopicAliasMaximum: 9, MaxPacketSize: 4096}})
	c := connectV5(t, addr, "limits", paho.Connect{CleanStart: true})
	p := c.connack.Properties
	require.NotNil(t, p.ReceiveMaximum)
	assert.Equal(t, uint16(7), *p.ReceiveMaximum)
	require.NotNil(t, p.TopicAliasMaximum)
	assert.Equal(t, uint16(9), *p.TopicAliasMaximum)
	require.NotNil(t, p.MaximumPacketSize)
	assert.Equal(t, uint32(4096), *p.MaximumPacketSize)
}

// ---- sessions ----

// [MQTT-3.2.2-3] A persistent session resumes with its subscriptions and
// the QoS 1 messages that arrived while the client was away.
func TestSession_PersistentResumes311(t *testing.T) {
	_, addr := startBroker(t, Config{})
	pub := connectV3(t, addr, "pub", true)
	c := connectV3(t, addr, "dev", false)
	assert.False(t, c.sessionPresent)
	c.sub(t, "s/#", 1)
	c.Disconnect(0)
	pub.pub(t, "s/offline", 1, false, "kept for you")
	c = connectV3(t, addr, "dev", false)
	assert.True(t, c.sessionPresent)
	m := next(t, c.msgs)
	assert.Equal(t, "kept for you", m.payload)
	pub.pub(t, "s/online", 0, false, "subscription kept")
	assert.Equal(t, "s/online", next(t, c.msgs).topic)
}

// [MQTT-3.1.2-4] [MQTT-3.2.2-2] Clean Start discards the old session.
func TestSession_CleanStartDiscards(t *testing.T) {
	_, addr := startBroker(t, Config{})
	pub := connectV3(t, addr, "pub", true)
	c := connectV3(t, addr, "dev", false)
	c.sub(t, "gone/#", 0)
	c.Disconnect(0)
	c = connectV3(t, addr, "dev", true)
	assert.False(t, c.sessionPresent)
	c.sub(t, "probe", 0)
	pub.pub(t, "gone/x", 0, false, "not for you")
	pub.pub(t, "probe", 0, false, "probe")
	assert.Equal(t, "probe", next(t, c.msgs).topic)
}

// [MQTT-3.1.4-2] A second connection with the same client id takes the
// session over; a 5.0 client is told with DISCONNECT 0x8E.
func TestSession_TakeoverTells5Client(t *testing.T) {
	b, addr := startBroker(t, Config{})
	first := connectV5(t, addr, "same", paho.Connect{CleanStart: true})
	second := connectV5(t, addr, "same", paho.Connect{CleanStart: false})
	select {
	case d := <-first.server:
		assert.Equal(t, byte(mqtt.SessionTakenOver), d.ReasonCode)
	case <-time.After(wait):
		t.Fatal("no DISCONNECT 0x8E")
	}
	second.sub(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "self", QoS: 1}}})
	second.pub(t, &paho.Publish{Topic: "self", QoS: 1, Payload: []byte("mine")})
	assert.Equal(t, "mine", next(t, second.msgs).payload)
	assert.Equal(t, uint64(1), counter(b, "disconnect_session_taken_over"))
}

// Takeover is race-free: clients racing for one id each get a CONNACK only
// after the previous owner has been closed, so once all are answered exactly
// n-1 were taken over and one session exists. Each hears its CONNACK
// before anything else [MQTT-3.2.0-1], even when a takeover kills it right
// after the broker made it the owner (TestSession_TakeoverInConnackGap
// forces that interleaving; this runs it as the scheduler falls), then
// DISCONNECT 0x8E: the last one when one more client takes over from it.
func TestSession_TakeoverRace(t *testing.T) {
	b, addr := startBroker(t, Config{})
	const n = 8
	acks := make(chan mqtt.ReasonCode, n)  // each client's first packet: CONNACK's code, 0xFF for anything else
	discs := make(chan mqtt.ReasonCode, n) // its second: DISCONNECT's code, 0xFF for anything else
	for range n {
		c := dialRaw(t, addr)
		c.r.SetVersion(mqtt.V5)
		go func() {
			buf, _ := (&mqtt.Connect{Version: mqtt.V5, ClientID: "contested"}).AppendTo(nil, mqtt.V5)
			_ = c.nc.SetDeadline(time.Now().Add(wait))
			code := mqtt.ReasonCode(0xFF)
			if _, err := c.nc.Write(buf); err == nil {
				if p, err := c.r.ReadPacket(); err == nil {
					if ack, ok := p.(*mqtt.Connack); ok {
						code = ack.ReasonCode
					}
				}
			}
			acks <- code
			code = 0xFF
			if p, err := c.r.ReadPacket(); err == nil {
				if d, ok := p.(*mqtt.Disconnect); ok {
					code = d.ReasonCode
				}
			}
			discs <- code
		}()
	}
	for range n {
		assert.Equal(t, mqtt.Success, <-acks, "first packet: CONNACK 0x00")
	}
	assert.Equal(t, uint64(n-1), counter(b, "disconnect_session_taken_over"))
	assert.Equal(t, 1, b.Sessions())
	last, _ := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "contested"})
	for range n {
		assert.Equal(t, mqtt.SessionTakenOver, <-discs, "second packet: DISCONNECT 0x8E")
	}
	assert.Equal(t, uint64(n), counter(b, "disconnect_session_taken_over"))
	last.send(t, &mqtt.PingReq{})
	assert.IsType(t, &mqtt.PingResp{}, last.next(t), "the last client holds the session")
}

// [MQTT-3.1.2-5 (5.0)] Session Expiry 0 ends the session with the
// connection; a non-zero one keeps it.
func TestSession_ExpiryInterval5(t *testing.T) {
	_, addr := startBroker(t, Config{})
	c := connectV5(t, addr, "e0", paho.Connect{CleanStart: true})
	c.Disconnect(&paho.Disconnect{})
	<-c.Done()
	c = connectV5(t, addr, "e0", paho.Connect{CleanStart: false})
	assert.False(t, c.connack.SessionPresent, "expiry 0: the session ended")

	cp := paho.Connect{CleanStart: false, Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(3600)}}
	c = connectV5(t, addr, "e1", cp)
	c.Disconnect(&paho.Disconnect{})
	<-c.Done()
	c = connectV5(t, addr, "e1", cp)
	assert.True(t, c.connack.SessionPresent, "expiry 3600: the session stayed")
}

// A broker cap on session expiry is sent back in CONNACK.
func TestSession_ExpiryCapped(t *testing.T) {
	_, addr := startBroker(t, Config{Session: session.Config{MaxSessionExpiry: 60}})
	c := connectV5(t, addr, "cap", paho.Connect{Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(3600)}})
	require.NotNil(t, c.connack.Properties.SessionExpiryInterval)
	assert.Equal(t, uint32(60), *c.connack.Properties.SessionExpiryInterval)
}

// [MQTT-3.14.2-2] A DISCONNECT may not turn a session expiry of 0 into a
// non-zero one: protocol error.
func TestSession_DisconnectCannotSetExpiryFromZero(t *testing.T) {
	_, addr := startBroker(t, Config{})
	c, _ := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "z", CleanStart: true})
	d := &mqtt.Disconnect{}
	d.Properties.SessionExpiry = 10
	c.send(t, d)
	got := c.closed(t)
	require.NotNil(t, got)
	assert.Equal(t, mqtt.ProtocolError, got.ReasonCode)
}
