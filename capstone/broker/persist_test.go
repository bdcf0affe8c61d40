//go:build floodgate.solution

package broker

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"floodgate/capstone/store"
	mqtt "floodgate/ch03-networking/03-mqtt"
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
