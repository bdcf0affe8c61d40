//go:build floodgate.solution

package session

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// takeoverHub is a testHub whose Open kills the connection it has just
// made the session's owner, as a racing takeover may: another CONNECT with
// the same client id finds the Conn its session's owner as soon as Hub.Open
// has returned, and Kills it (then waits for Done), perhaps before the
// Conn's own goroutine has queued the CONNACK. Here that interleaving is
// forced, not left to the scheduler.
type takeoverHub struct {
	*testHub
	opened int // Open calls; the test's goroutine only
}

func (h *takeoverHub) Open(c *Conn, id string, clean bool) (*State, bool) {
	h.opened++
	st, present := h.testHub.Open(c, id, clean)
	c.Kill(mqtt.SessionTakenOver, ReasonTakenOver)
	return st, present
}

// connectBytes is a CONNECT for client "contested" in version v.
func connectBytes(t *testing.T, v mqtt.Version) []byte {
	t.Helper()
	b, err := (&mqtt.Connect{Version: v, ClientID: "contested", CleanStart: true}).AppendTo(nil, v)
	require.NoError(t, err)
	return b
}

// decodeV decodes the packets in b as version v.
func decodeV(t *testing.T, b []byte, v mqtt.Version) []mqtt.Packet {
	t.Helper()
	var out []mqtt.Packet
	for len(b) > 0 {
		h, body, n, err := Split(b, 0)
		require.NoError(t, err)
		p, err := mqtt.DecodePacket(h, body, v)
		require.NoError(t, err)
		out = append(out, p)
		b = b[n:]
	}
	return out
}

// requireConnackThenTakeover checks what a client taken over in the gap
// hears: CONNACK 0x00 first [MQTT-3.2.0-1], then, for 5.0 only
// [MQTT-3.14.0-1], DISCONNECT 0x8E Session taken over; then nothing.
func requireConnackThenTakeover(t *testing.T, v mqtt.Version, got []mqtt.Packet) {
	t.Helper()
	require.NotEmpty(t, got, "nothing written")
	ack, ok := got[0].(*mqtt.Connack)
	require.True(t, ok, "first packet %T, want CONNACK [MQTT-3.2.0-1]", got[0])
	assert.Equal(t, mqtt.Success, ack.ReasonCode)
	if v != mqtt.V5 {
		assert.Len(t, got, 1, "a 3.1.1 client is sent no DISCONNECT")
		return
	}
	require.Len(t, got, 2)
	d, ok := got[1].(*mqtt.Disconnect)
	require.True(t, ok, "second packet %T, want DISCONNECT", got[1])
	assert.Equal(t, mqtt.SessionTakenOver, d.ReasonCode)
}

// A takeover that kills a connection between Hub.Open (which made it the
// owner) and its CONNACK: the client hears the CONNACK first, then the
// takeover's DISCONNECT, and the taker's wait (Done) ends. Driven Conn, as
// the epoll engine runs it.
func TestTakeover_InOpenConnackFirstDriven(t *testing.T) {
	for _, v := range []mqtt.Version{mqtt.V5, mqtt.V311} {
		t.Run(v.String(), func(t *testing.T) {
			hub := &takeoverHub{testHub: newTestHub()}
			c := NewDriven(&Config{}, hub, mqtt.Success, func() {})
			h, body, _, err := Split(connectBytes(t, v), 0)
			require.NoError(t, err)
			require.NoError(t, c.Connect(h, body), "the CONNECT itself was accepted")
			out, end := c.Output(nil)
			assert.True(t, end, "killed: Output reports the end")
			requireConnackThenTakeover(t, v, decodeV(t, out, v))
			c.Finish()
			select {
			case <-c.Done():
			default:
				t.Fatal("Done not closed after Finish: a takeover would wait forever")
			}
			assert.Equal(t, ReasonTakenOver, c.Reason())
			assert.Equal(t, 1, hub.count("disconnect_"+ReasonTakenOver))
		})
	}
}

// The same over a socket, as the goroutine engine serves it.
func TestTakeover_InOpenConnackFirstServe(t *testing.T) {
	for _, v := range []mqtt.Version{mqtt.V5, mqtt.V311} {
		t.Run(v.String(), func(t *testing.T) {
			hub := &takeoverHub{testHub: newTestHub()}
			srv, cli := net.Pipe()
			c := NewConn(&Config{}, hub, srv, mqtt.Success)
			served := make(chan string, 1)
			go func() { served <- c.Serve(context.Background()) }()
			t.Cleanup(func() { cli.Close(); <-c.Done() })
			require.NoError(t, cli.SetDeadline(time.Now().Add(5*time.Second)))
			_, err := cli.Write(connectBytes(t, v))
			require.NoError(t, err)
			r := mqtt.NewReader(cli, mqtt.Config{})
			r.SetVersion(v)
			var got []mqtt.Packet
			for {
				p, err := r.ReadPacket()
				if err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Fatalf("the server never closed the connection: %v", err)
					}
					break // closed by the server
				}
				got = append(got, p)
			}
			requireConnackThenTakeover(t, v, got)
			assert.Equal(t, ReasonTakenOver, <-served)
			assert.Equal(t, 1, hub.count("disconnect_"+ReasonTakenOver))
		})
	}
}

// A connection killed while its CONNECT is handled, before the CONNACK is
// due (a shutdown during a slow credentials check): no session is opened,
// and nothing is written, above all no DISCONNECT without a CONNACK
// before it [MQTT-3.2.0-1].
func TestTakeover_KilledBeforeOpenNoSession(t *testing.T) {
	hub := &takeoverHub{testHub: newTestHub()}
	c := NewDriven(&Config{}, hub, mqtt.Success, func() {})
	c.Kill(mqtt.ServerShuttingDown, ReasonShutdown)
	h, body, _, err := Split(connectBytes(t, mqtt.V5), 0)
	require.NoError(t, err)
	assert.Error(t, c.Connect(h, body), "killed before its CONNACK was due: no session")
	assert.Zero(t, hub.opened, "no session opened for a connection already killed")
	out, end := c.Output(nil)
	assert.True(t, end)
	assert.Empty(t, out, "no CONNACK, and no DISCONNECT without one")
	c.Finish()
	assert.Equal(t, ReasonShutdown, c.Reason())
	assert.Equal(t, 1, hub.count("disconnect_"+ReasonShutdown))
}
