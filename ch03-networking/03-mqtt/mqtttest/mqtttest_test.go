//go:build floodgate.solution

package mqtttest

import (
	"fmt"
	"net"
	"runtime"
	"testing"

	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeBroker accepts one connection on ln, answers CONNECT with CONNACK and
// PINGREQ with PINGRESP, and on any other packet sends DISCONNECT and
// closes. It returns when the connection ends.
func fakeBroker(t *testing.T, ln net.Listener) {
	nc, err := ln.Accept()
	if !assert.NoError(t, err) {
		return
	}
	defer nc.Close()
	c := New(nc, 0)
	for {
		p, err := c.read()
		if err != nil {
			return
		}
		var out mqtt.Packet
		switch p := p.(type) {
		case *mqtt.Connect:
			c.Reader.SetVersion(p.Version)
			out = &mqtt.Connack{}
		case *mqtt.PingReq:
			out = &mqtt.PingResp{}
		default:
			buf, _ := (&mqtt.Disconnect{}).AppendTo(nil, c.Reader.Version())
			_, _ = nc.Write(buf)
			return
		}
		buf, err := out.AppendTo(nil, c.Reader.Version())
		if !assert.NoError(t, err) {
			return
		}
		if _, err := nc.Write(buf); err != nil {
			return
		}
	}
}

func TestConn_ConnectPingClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		fakeBroker(t, ln)
	}()
	c, ack := Connect(t, ln.Addr().String(), &mqtt.Connect{ClientID: "x", CleanStart: true}, 0)
	assert.Equal(t, mqtt.V311, c.Reader.Version(), "a zero version means 3.1.1")
	assert.NotNil(t, ack)
	c.Ping(t)
	c.Send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "a"}}})
	assert.NotNil(t, c.Closed(t), "the DISCONNECT sent before closing")
	<-served
}

func TestConn_EOF(t *testing.T) {
	srv, cli := net.Pipe()
	srv.Close()
	New(cli, 0).EOF(t)
	cli.Close()
}

// recorder is a testing.TB that records a failure instead of failing the
// test; FailNow ends the goroutine, as testing's does.
type recorder struct {
	testing.TB
	failed bool
	msg    string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
}
func (r *recorder) FailNow() { r.failed = true; runtime.Goexit() }

// run calls f with a recorder on a goroutine of its own (FailNow ends it).
func run(t *testing.T, f func(tb testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

// Bytes the codec refuses, on a connection that stays open, are not a
// close: Closed and EOF fail instead of passing.
func TestConn_GarbageIsNoClose(t *testing.T) {
	for name, check := range map[string]func(c *Conn, tb testing.TB){
		"Closed": func(c *Conn, tb testing.TB) { c.Closed(tb) },
		"EOF":    func(c *Conn, tb testing.TB) { c.EOF(tb) },
	} {
		srv, cli := net.Pipe()
		go func() { _, _ = srv.Write([]byte{0x00, 0x00}) }() // reserved packet type 0
		r := run(t, func(tb testing.TB) { check(New(cli, 0), tb) })
		assert.True(t, r.failed, "%s passed on garbage from an open connection", name)
		assert.Contains(t, r.msg, "cannot read", name)
		cli.Close()
		srv.Close()
	}
}
