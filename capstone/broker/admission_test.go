//go:build floodgate.solution

package broker

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"floodgate/capstone/admission"
	"floodgate/capstone/ops"
	"floodgate/capstone/session"
	mqtt "floodgate/ch03-networking/03-mqtt"
	auth "floodgate/ch03-networking/07-auth"
	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The connection cap refuses the connection over it with CONNACK 0x89
// Server busy (3.1.1: 3 Server unavailable), and counts it.
func TestAdmission_ConnectionCap(t *testing.T) {
	m := ops.NewMetrics()
	b, addr := startBroker(t, Config{Admission: admission.Config{MaxConns: 1}, Metrics: m})
	connectV3(t, addr, "first", true)
	_, ack := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "second", CleanStart: true})
	assert.Equal(t, mqtt.ServerBusy, ack.ReasonCode)
	_, ack = connectRaw(t, addr, &mqtt.Connect{ClientID: "third", CleanStart: true})
	assert.Equal(t, byte(3), mqtt.ReturnCodeV311(ack.ReasonCode))
	assert.Equal(t, uint64(2), counter(b, "admission_"+admission.ReasonConnCap))
	assert.Equal(t, 2.0, testutil.ToFloat64(m.ConnectionsRefused.WithLabelValues(ops.RefuseCap)))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.ConnectionsCurrent))
}

// The accept-rate limiter (chapter 4's token bucket) refuses a connection
// storm with CONNACK 0x9F Connection rate exceeded.
func TestAdmission_AcceptRate(t *testing.T) {
	b, addr := startBroker(t, Config{Admission: admission.Config{AcceptRate: 0.001, AcceptBurst: 2}})
	connectV3(t, addr, "a", true)
	connectV3(t, addr, "b", true)
	_, ack := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "c", CleanStart: true})
	assert.Equal(t, mqtt.ConnectionRateExceeded, ack.ReasonCode)
	assert.Equal(t, uint64(1), counter(b, "admission_"+admission.ReasonAcceptRate))
}

// testPasswords is a password file with user "dev", password "s3cret"
// (bcrypt, cost 4).
const testPasswords = "dev:$2a$04$TuUhKe8ozf1mAfrld0KaSObYLFJiVhtKSSS14.bX54cjGO9HjA.rC\n"

func authConfig(t *testing.T) admission.Config {
	t.Helper()
	pw, err := auth.ParsePasswords(strings.NewReader(testPasswords))
	require.NoError(t, err)
	acl, err := auth.ParseACL(strings.NewReader("readwrite dev/%c/#\nread public/#\n"))
	require.NoError(t, err)
	return admission.Config{Passwords: pw, ACL: acl}
}

// Chapter 3's password file: a wrong password gets 0x86 (3.1.1: 4), a
// missing user name 0x87 (3.1.1: 5), the right one is accepted.
func TestAdmission_Credentials(t *testing.T) {
	b, addr := startBroker(t, Config{Admission: authConfig(t)})
	_, ack := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "x", CleanStart: true,
		Username: "dev", HasUsername: true, Password: []byte("wrong"), HasPassword: true})
	assert.Equal(t, mqtt.BadUserNameOrPassword, ack.ReasonCode)
	_, ack = connectRaw(t, addr, &mqtt.Connect{ClientID: "x", CleanStart: true,
		Username: "dev", HasUsername: true, Password: []byte("wrong"), HasPassword: true})
	assert.Equal(t, byte(4), mqtt.ReturnCodeV311(ack.ReasonCode))
	_, ack = connectRaw(t, addr, &mqtt.Connect{ClientID: "x", CleanStart: true})
	assert.Equal(t, byte(5), mqtt.ReturnCodeV311(ack.ReasonCode))
	_, ack = connectRaw(t, addr, &mqtt.Connect{ClientID: "x", CleanStart: true,
		Username: "dev", HasUsername: true, Password: []byte("s3cret"), HasPassword: true})
	assert.Equal(t, mqtt.Success, ack.ReasonCode)
	assert.Equal(t, uint64(2), counter(b, "admission_"+admission.ReasonBadCredentials))
	assert.Equal(t, uint64(1), counter(b, "admission_"+admission.ReasonNotAuthorized))
}

// Topic ACLs: a 5.0 PUBLISH or SUBSCRIBE outside them gets 0x87 Not
// authorized; 3.1.1 gets SUBACK 0x80, and its PUBLISH is dropped.
func TestAdmission_ACL(t *testing.T) {
	b, addr := startBroker(t, Config{Admission: authConfig(t)})
	cp := paho.Connect{CleanStart: true, Username: "dev", UsernameFlag: true, Password: []byte("s3cret"), PasswordFlag: true}
	c := connectV5(t, addr, "me", cp)
	ack, _ := c.Subscribe(t.Context(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "dev/me/#", QoS: 1}, {Topic: "dev/other/#", QoS: 1}, {Topic: "public/x", QoS: 1}}})
	require.NotNil(t, ack)
	assert.Equal(t, []byte{1, byte(mqtt.NotAuthorized), 1}, ack.Reasons)
	r, err := c.Publish(t.Context(), &paho.Publish{Topic: "public/x", QoS: 1, Payload: []byte("no")})
	if err == nil {
		assert.Equal(t, byte(mqtt.NotAuthorized), r.ReasonCode)
	} else {
		// paho.golang turns PUBACK 0x87 into this error.
		assert.Contains(t, err.Error(), "not authorized")
	}
	c.pub(t, &paho.Publish{Topic: "dev/me/ok", QoS: 1, Payload: []byte("yes")})
	assert.Equal(t, "yes", next(t, c.msgs).payload, "only the allowed message arrives")

	raw, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "old", CleanStart: true,
		Username: "dev", HasUsername: true, Password: []byte("s3cret"), HasPassword: true})
	raw.send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "secret/#"}}})
	sa := raw.next(t).(*mqtt.SubAck)
	assert.Equal(t, []mqtt.ReasonCode{mqtt.UnspecifiedError}, sa.ReasonCodes)
	assert.Equal(t, uint64(2), counter(b, "admission_"+admission.ReasonACLRead))
	assert.Equal(t, uint64(1), counter(b, "admission_"+admission.ReasonACLWrite))
}

// Chapter 4's GCRA per client: a 5.0 client over its publish rate gets
// DISCONNECT 0x96; a 3.1.1 client is disconnected. Both are counted.
func TestAdmission_PublishRate(t *testing.T) {
	m := ops.NewMetrics()
	b, addr := startBroker(t, Config{Admission: admission.Config{PublishRate: 0.001, PublishBurst: 2}, Metrics: m})
	c, _ := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "fast5", CleanStart: true})
	for range 3 {
		c.send(t, &mqtt.Publish{Topic: []byte("t"), Payload: []byte("x")})
	}
	d := c.closed(t)
	require.NotNil(t, d)
	assert.Equal(t, mqtt.MessageRateTooHigh, d.ReasonCode)

	c, _ = connectRaw(t, addr, &mqtt.Connect{ClientID: "fast3", CleanStart: true})
	for range 3 {
		c.send(t, &mqtt.Publish{Topic: []byte("t"), Payload: []byte("x")})
	}
	assert.Nil(t, c.closed(t), "3.1.1 has no DISCONNECT from the server")
	assert.Equal(t, uint64(2), counter(b, "disconnect_"+admission.ReasonPublishRate))
	assert.Equal(t, 2.0, testutil.ToFloat64(m.LimiterRejections.WithLabelValues(ops.LimitPublish)))
}

// The byte rate: a burst of payload bytes, then DISCONNECT 0x96.
func TestAdmission_ByteRate(t *testing.T) {
	b, addr := startBroker(t, Config{Admission: admission.Config{ByteRate: 1, ByteBurst: 1000}})
	c, _ := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "big", CleanStart: true})
	c.send(t, &mqtt.Publish{Topic: []byte("t"), Payload: bytes.Repeat([]byte("x"), 900)})
	c.send(t, &mqtt.Publish{Topic: []byte("t"), Payload: bytes.Repeat([]byte("x"), 200)})
	d := c.closed(t)
	require.NotNil(t, d)
	assert.Equal(t, mqtt.MessageRateTooHigh, d.ReasonCode)
	assert.Equal(t, uint64(1), counter(b, "admission_"+admission.ReasonByteRate))
}

// A subscriber that does not read fills its bounded queue and is
// disconnected as a slow consumer, counted; the publisher and a healthy
// subscriber never wait for it.
func TestSlowConsumer_DisconnectedOthersUnaffected(t *testing.T) {
	m := ops.NewMetrics()
	b, addr := startBroker(t, Config{Session: session.Config{MaxQueued: 8}, Metrics: m})
	slow, _ := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "slow", CleanStart: true})
	slow.send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "flood"}}})
	require.IsType(t, &mqtt.SubAck{}, slow.next(t))
	// slow reads nothing from now on, into a small socket buffer.
	require.NoError(t, slow.nc.(*net.TCPConn).SetReadBuffer(4096))
	fast := connectV3(t, addr, "fast", true)
	fast.sub(t, "flood", 0)
	pub, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "pub", CleanStart: true})
	payload := bytes.Repeat([]byte("x"), 64<<10)
	const n = 160 // 10 MiB: more than the loopback socket buffers hold
	for i := range n {
		p := &mqtt.Publish{Topic: []byte("flood"), Payload: payload}
		if i == n-1 {
			p.QoS, p.PacketID = 1, 1
		}
		pub.send(t, p)
		if i%8 == 7 {
			// Pace the publisher by the fast subscriber, not the slow one.
			for range 8 {
				next(t, fast.msgs)
			}
		}
	}
	require.IsType(t, &mqtt.PubAck{}, pub.next(t), "the publisher was never stalled")
	assert.Equal(t, uint64(1), counter(b, "disconnect_"+session.ReasonSlowConsumer))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.Drops.WithLabelValues(ops.DropSlowConsumer)))
	assert.Positive(t, testutil.CollectAndCount(m.QueueDepthObserved), "queue depths observed")
	// The broker resets the slow connection rather than waiting for the
	// megabytes in its socket buffer to drain.
	assert.Nil(t, slow.closed(t), "no DISCONNECT can pass a full queue")
}
