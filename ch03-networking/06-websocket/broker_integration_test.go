//go:build floodgate.solution

package websocket

import (
	"context"
	"net"
	"testing"
	"time"

	broker "floodgate/ch03-networking/05-broker"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBrokerOverWebSocket serves lab 05's broker through the Handler: the
// callback is (*broker.Broker).ServeConn, exactly what it gets from a TCP
// listener. It runs only with the reference solutions, because under a plain
// `go test` the broker is the reader's lab 05, which may not be done yet.
func TestBrokerOverWebSocket(t *testing.T) {
	b, err := broker.New(broker.Config{})
	require.NoError(t, err)
	defer b.Close()
	h, err := New(Config{}, b.ServeConn)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- h.Serve(ctx, ln) }()
	defer func() {
		cancel()
		assert.NoError(t, <-errc)
	}()

	url := "ws://" + ln.Addr().String() + "/mqtt"
	connect := func(id string) paho.Client {
		t.Helper()
		c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).
			SetAutoReconnect(false).SetConnectTimeout(guard))
		tok := c.Connect()
		require.True(t, tok.WaitTimeout(guard), "CONNECT %s timed out", id)
		require.NoError(t, tok.Error())
		return c
	}

	dashboard := connect("dashboard")
	defer dashboard.Disconnect(100)
	got := make(chan paho.Message, 1)
	tok := dashboard.Subscribe("plant/+/temp", 1, func(_ paho.Client, m paho.Message) { got <- m })
	require.True(t, tok.WaitTimeout(guard))
	require.NoError(t, tok.Error())

	sensor := connect("line1-sensor")
	defer sensor.Disconnect(100)
	tok = sensor.Publish("plant/line1/temp", 1, false, "21.5")
	require.True(t, tok.WaitTimeout(guard), "PUBACK timed out")
	require.NoError(t, tok.Error())

	timeout := time.NewTimer(guard)
	defer timeout.Stop()
	select {
	case m := <-got:
		assert.Equal(t, "plant/line1/temp", m.Topic())
		assert.Equal(t, "21.5", string(m.Payload()))
		assert.Equal(t, byte(1), m.Qos())
	case <-timeout.C:
		t.Fatal("the broker never delivered the reading over the WebSocket")
	}
	assert.Equal(t, 2, h.Active())
}
