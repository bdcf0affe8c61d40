//go:build floodgate.solution

package broker

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"floodgate/capstone/session"
	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bystander is a healthy client that must keep working while an offender is
// thrown out.
func bystander(t *testing.T, addr string) func() {
	t.Helper()
	c := connectV3(t, addr, "bystander", true)
	c.sub(t, "still/here", 1)
	return func() {
		t.Helper()
		c.pub(t, "still/here", 1, false, "ok")
		assert.Equal(t, "ok", next(t, c.msgs).payload, "the bystander was affected")
	}
}

// A malformed packet after CONNECT (here, a reserved packet type 0) closes
// that connection with DISCONNECT 0x81 and a counter.
func TestBadInput_MalformedPacket(t *testing.T) {
	b, addr := startBroker(t, Config{})
	check := bystander(t, addr)
	c, _ := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "bad", CleanStart: true})
	c.write(t, []byte{0x00, 0x00})
	d := c.closed(t)
	require.NotNil(t, d)
	assert.Equal(t, mqtt.MalformedPacket, d.ReasonCode)
	assert.Equal(t, uint64(1), counter(b, "disconnect_"+session.ReasonMalformed))
	check()
}

// A Remaining Length of five bytes is malformed [MQTT-1.5.5-1]; a 3.1.1
// client is simply closed.
func TestBadInput_BadRemainingLength(t *testing.T) {
	b, addr := startBroker(t, Config{})
	check := bystander(t, addr)
	c, _ := connectRaw(t, addr, &mqtt.Connect{ClientID: "bad", CleanStart: true})
	c.write(t, []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F})
	assert.Nil(t, c.closed(t))
	assert.Equal(t, uint64(1), counter(b, "disconnect_"+session.ReasonMalformed))
	check()
}

// An oversized CONNECT is refused from its header alone, before its body
// is read.
func TestBadInput_OversizedConnect(t *testing.T) {
	b, addr := startBroker(t, Config{Session: session.Config{MaxPacketSize: 256}})
	check := bystander(t, addr)
	c := dialRaw(t, addr)
	c.write(t, []byte{0x10, 0x80, 0x80, 0x04}) // CONNECT of 64 KiB, body never sent
	c.closed(t)
	assert.Equal(t, uint64(1), counter(b, "disconnect_"+session.ReasonTooLarge))
	check()
}

// A slowloris peer that never finishes its CONNECT is closed after
// ConnectTimeout and counted.
func TestBadInput_Slowloris(t *testing.T) {
	b, addr := startBroker(t, Config{Session: session.Config{ConnectTimeout: 200 * time.Millisecond}})
	check := bystander(t, addr)
	c := dialRaw(t, addr)
	c.write(t, []byte{0x10, 20, 0, 4, 'M'}) // and nothing more
	c.closed(t)
	assert.Equal(t, uint64(1), counter(b, "disconnect_"+session.ReasonConnectTimeout))
	check()
}

// [MQTT-3.1.2-24] A half-open connection (silent for 1.5 x keepalive) is
// closed: DISCONNECT 0x8D for 5.0, and a counter.
func TestBadInput_HalfOpenKeepAlive(t *testing.T) {
	b, addr := startBroker(t, Config{})
	check := bystander(t, addr)
	c, _ := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "quiet", CleanStart: true, KeepAlive: 1})
	start := time.Now()
	d := c.closed(t)
	require.NotNil(t, d)
	assert.Equal(t, mqtt.KeepAliveTimeout, d.ReasonCode)
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "closed before 1.5 x keepalive")
	assert.Equal(t, uint64(1), counter(b, "disconnect_"+session.ReasonKeepAlive))
	check()
}

// A packet type only a server sends (SUBACK) is a protocol error: 0x82.
func TestBadInput_ServerPacketFromClient(t *testing.T) {
	b, addr := startBroker(t, Config{})
	c, _ := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "odd", CleanStart: true})
	c.send(t, &mqtt.SubAck{PacketID: 1, ReasonCodes: []mqtt.ReasonCode{0}})
	d := c.closed(t)
	require.NotNil(t, d)
	assert.Equal(t, mqtt.ProtocolError, d.ReasonCode)
	assert.Equal(t, uint64(1), counter(b, "disconnect_"+session.ReasonProtocol))
}

// connectBytes is a valid 5.0 CONNECT, so fuzzed bytes reach the session
// after it as well as before.
func connectBytes() []byte {
	buf, _ := (&mqtt.Connect{Version: mqtt.V5, ClientID: "fuzz", CleanStart: true}).AppendTo(nil, mqtt.V5)
	return buf
}

// FuzzSession feeds raw bytes to a live session over net.Pipe: whatever
// they are, the session must end (no hang, no panic) once the peer stops.
func FuzzSession(f *testing.F) {
	pub, _ := (&mqtt.Publish{QoS: 1, PacketID: 1, Topic: []byte("a/b"), Payload: []byte("x")}).AppendTo(nil, mqtt.V5)
	sub, _ := (&mqtt.Subscribe{PacketID: 2, Subscriptions: []mqtt.Subscription{{Filter: "a/#", QoS: 2}}}).AppendTo(nil, mqtt.V5)
	f.Add(false, []byte{})
	f.Add(true, append(append([]byte{}, sub...), pub...))
	f.Add(true, []byte{0x00, 0x00})
	f.Add(true, []byte{0x10, 0x00})
	f.Add(false, []byte{0x10, 0xFF, 0xFF, 0xFF, 0x7F})
	f.Add(true, []byte{0x62, 0x02, 0x00, 0x01, 0xC0, 0x00, 0xE0, 0x00})
	b, err := New(Config{Session: session.Config{ConnectTimeout: time.Second, MaxPacketSize: 4096}})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, withConnect bool, data []byte) {
		client, server := net.Pipe()
		served := make(chan struct{})
		go func() { defer close(served); b.ServeConn(context.Background(), server) }()
		go func() { _, _ = io.Copy(io.Discard, client) }()
		_ = client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if withConnect {
			_, _ = client.Write(connectBytes())
		}
		_, _ = client.Write(data)
		client.Close()
		select {
		case <-served:
		case <-time.After(5 * time.Second):
			t.Fatal("the session did not end after its peer closed")
		}
	})
}
