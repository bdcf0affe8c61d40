//go:build floodgate.solution

package broker

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"floodgate/capstone/session"
	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gapHub is the broker as the session.Hub of one connection, with a hook
// in the gap between the broker's Open, which makes the connection its
// session's owner, and the connection's CONNACK. There inGap lets a real
// takeover happen: it returns once the takeover has killed the connection.
type gapHub struct {
	*Broker
	inGap    func(c *session.Conn)
	once     sync.Once
	tookOver chan struct{} // closed when the connection is counted taken over
}

func (h *gapHub) Open(c *session.Conn, id string, clean bool) (*session.State, bool) {
	st, present := h.Broker.Open(c, id, clean)
	h.inGap(c)
	return st, present
}

func (h *gapHub) Count(name string) {
	h.Broker.Count(name)
	if name == "disconnect_"+session.ReasonTakenOver {
		h.once.Do(func() { close(h.tookOver) })
	}
}

// A second CONNECT with the same client id takes the session over in the
// gap between the broker's Open and the first connection's CONNACK (the
// interleaving is forced): the first client hears its CONNACK first
// [MQTT-3.2.0-1], then DISCONNECT 0x8E; the second is answered once the
// first has ended [MQTT-3.1.4-2]. The first connection is served as each
// engine serves one (a goroutine's Serve, an event loop's Connect and
// Output); the second goes through the engine under test.
func TestSession_TakeoverInConnackGap(t *testing.T) {
	for _, shape := range []string{"serve", "driven"} {
		t.Run(shape, func(t *testing.T) {
			b, addr := startBroker(t, Config{})
			cfg := b.cfg.Session // a copy: NewConn fills in defaults
			taker := dialRaw(t, addr)
			taker.r.SetVersion(mqtt.V5)
			takerAck := make(chan mqtt.ReasonCode, 1)
			hub := &gapHub{Broker: b, tookOver: make(chan struct{})}
			hub.inGap = func(c *session.Conn) {
				go func() {
					buf, _ := (&mqtt.Connect{Version: mqtt.V5, ClientID: "gap"}).AppendTo(nil, mqtt.V5)
					_ = taker.nc.SetDeadline(time.Now().Add(wait))
					code := mqtt.ReasonCode(0xFF)
					if _, err := taker.nc.Write(buf); err == nil {
						if p, err := taker.r.ReadPacket(); err == nil {
							if ack, ok := p.(*mqtt.Connack); ok {
								code = ack.ReasonCode
							}
						}
					}
					takerAck <- code
				}()
				select {
				case <-hub.tookOver:
					// Kill counts, then does its work, under the lock
					// that Done takes: once Done returns (its channel,
					// not waited on) the Kill has finished.
					_ = c.Done()
				case <-time.After(wait):
					t.Error("the second CONNECT never took the session over")
				}
			}
			connect, err := (&mqtt.Connect{Version: mqtt.V5, ClientID: "gap"}).AppendTo(nil, mqtt.V5)
			require.NoError(t, err)

			var got []mqtt.Packet
			switch shape {
			case "serve":
				srv, cli := net.Pipe()
				c := session.NewConn(&cfg, hub, srv, mqtt.Success)
				go c.Serve(context.Background())
				t.Cleanup(func() { cli.Close(); <-c.Done() })
				require.NoError(t, cli.SetDeadline(time.Now().Add(wait)))
				_, err := cli.Write(connect)
				require.NoError(t, err)
				r := mqtt.NewReader(cli, mqtt.Config{})
				r.SetVersion(mqtt.V5)
				for {
					p, err := r.ReadPacket()
					if err != nil {
						var ne net.Error
						require.False(t, errors.As(err, &ne) && ne.Timeout(), "never closed: %v", err)
						break
					}
					got = append(got, p)
				}
			case "driven":
				c := session.NewDriven(&cfg, hub, mqtt.Success, func() {})
				h, body, _, err := session.Split(connect, 0)
				require.NoError(t, err)
				require.NoError(t, c.Connect(h, body))
				out, end := c.Output(nil)
				assert.True(t, end, "killed: Output reports the end")
				c.Finish() // the loop closes the socket, then this: Done
				for len(out) > 0 {
					h, body, n, err := session.Split(out, 0)
					require.NoError(t, err)
					p, err := mqtt.DecodePacket(h, body, mqtt.V5)
					require.NoError(t, err)
					got, out = append(got, p), out[n:]
				}
			}

			require.NotEmpty(t, got, "nothing written to the first client")
			ack, ok := got[0].(*mqtt.Connack)
			require.True(t, ok, "first packet %T, want CONNACK [MQTT-3.2.0-1]", got[0])
			assert.Equal(t, mqtt.Success, ack.ReasonCode)
			require.Len(t, got, 2, "CONNACK, then DISCONNECT")
			d, ok := got[1].(*mqtt.Disconnect)
			require.True(t, ok, "second packet %T, want DISCONNECT", got[1])
			assert.Equal(t, mqtt.SessionTakenOver, d.ReasonCode)
			assert.Equal(t, mqtt.Success, <-takerAck, "the second client's CONNACK")
			assert.Equal(t, uint64(1), counter(b, "disconnect_session_taken_over"))
			assert.Equal(t, 1, b.Sessions())
		})
	}
}
