//go:build floodgate.solution

package broker

import (
	"errors"
	"io"
	"testing"
	"time"

	"floodgate/capstone/session"
	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/stretchr/testify/require"
)

// drive runs a driven session (the epoll engine's side of the state
// machine) on data as an event loop would, chunk bytes per read: Split the
// CONNECT, Connect, then Feed with the partial packet kept, and Output after
// each step; then the peer's EOF and Finish. It returns every byte written.
func drive(t *testing.T, b *Broker, data []byte, chunk int) []byte {
	t.Helper()
	cfg := b.cfg.Session
	c := session.NewDriven(&cfg, b, mqtt.Success, func() {})
	finished := false
	defer func() {
		if !finished { // a failed check: still end the session, or the next
			// input with the same client id would wait for it forever
			c.Kill(0, session.ReasonEOF)
			c.Finish()
		}
	}()
	var in, out []byte
	connected, ended := false, false
	flush := func() {
		if ended {
			return
		}
		var end bool
		out, end = c.Output(out)
		ended = end
	}
	for len(data) > 0 && !ended && c.Reason() == "" {
		n := min(chunk, len(data))
		in, data = append(in, data[:n]...), data[n:]
		if !connected {
			h, body, used, err := session.Split(in, c.MaxPacketSize())
			if errors.Is(err, io.ErrUnexpectedEOF) {
				continue
			}
			if err != nil {
				c.Fail(err)
				break
			}
			if c.Connect(h, append([]byte(nil), body...)) != nil {
				break
			}
			connected, in = true, in[used:]
		}
		used, err := c.Feed(in)
		in = in[used:]
		flush()
		if err != nil {
			break
		}
	}
	c.Fail(io.EOF)
	flush()
	require.True(t, ended, "Output reports the end once the connection is killed")
	tail, end := c.Output(nil)
	require.True(t, end)
	require.Empty(t, tail, "nothing after the end")
	finished = true
	c.Finish()
	select {
	case <-c.Done():
	default:
		t.Fatal("Done is not closed after Finish")
	}
	return out
}

// A driven session answers CONNECT, SUBSCRIBE and PINGREQ fed one byte at a
// time, exactly as the goroutine engine would.
func TestDriven_PartialPackets(t *testing.T) {
	b, err := New(Config{SysInterval: -1})
	require.NoError(t, err)
	sub, _ := (&mqtt.Subscribe{PacketID: 7, Subscriptions: []mqtt.Subscription{{Filter: "a/#", QoS: 1}}}).AppendTo(nil, mqtt.V5)
	ping, _ := (&mqtt.PingReq{}).AppendTo(nil, mqtt.V5)
	data := append(append(connectBytes(), sub...), ping...)
	out := drive(t, b, data, 1)
	var types []mqtt.PacketType
	for len(out) > 0 {
		p, n, err := mqtt.Decode(out, mqtt.V5, 0)
		require.NoError(t, err)
		types = append(types, p.Type())
		out = out[n:]
	}
	require.Equal(t, []mqtt.PacketType{mqtt.CONNACK, mqtt.SUBACK, mqtt.PINGRESP}, types)
	require.Equal(t, uint64(1), counter(b, "disconnect_"+session.ReasonEOF))
}

// FuzzDriven feeds raw bytes, in chunks of every size, to a driven session:
// whatever they are, it must end cleanly (no panic, nothing written after
// the end, Done closed).
func FuzzDriven(f *testing.F) {
	pub, _ := (&mqtt.Publish{QoS: 1, PacketID: 1, Topic: []byte("a/b"), Payload: []byte("x")}).AppendTo(nil, mqtt.V5)
	sub, _ := (&mqtt.Subscribe{PacketID: 2, Subscriptions: []mqtt.Subscription{{Filter: "a/#", QoS: 2}}}).AppendTo(nil, mqtt.V5)
	f.Add(uint8(3), append(append(connectBytes(), sub...), pub...))
	f.Add(uint8(1), []byte{0x10, 0xFF, 0xFF, 0xFF, 0x7F})
	f.Add(uint8(0), append(connectBytes(), 0x62, 0x02, 0x00, 0x01, 0xC0, 0x00, 0xE0, 0x00))
	b, err := New(Config{SysInterval: -1, Session: session.Config{ConnectTimeout: time.Second, MaxPacketSize: 4096}})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, chunk uint8, data []byte) {
		drive(t, b, data, int(chunk)+1)
	})
}
