//go:build floodgate.solution

package mqtttest

import (
	"net"
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
