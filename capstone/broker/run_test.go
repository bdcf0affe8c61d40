//go:build floodgate.solution

package broker

import (
	"context"
	"net"
	"testing"
	"time"

	"floodgate/capstone/listeners"
	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Run serves TCP and MQTT over WebSocket (chapter 3's lab 6); when its
// context ends, 5.0 clients get DISCONNECT 0x8B Server shutting down and Run
// returns nil.
func TestRun_WebSocketAndGracefulShutdown(t *testing.T) {
	b, err := New(Config{Engine: testEngine, Listeners: listeners.Config{TCP: "127.0.0.1:0", WS: "127.0.0.1:0"}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan map[string]net.Addr, 1)
	ran := make(chan error, 1)
	go func() { ran <- b.Run(ctx, func(a map[string]net.Addr) { addrs <- a }) }()
	a := <-addrs

	v5c := connectV5(t, a["tcp"].String(), "five", paho.Connect{CleanStart: true})
	// A peer that never sends its CONNECT must not hold up the shutdown
	// for the 10 s ConnectTimeout.
	silent := dialRaw(t, a["tcp"].String())
	ws, err := tryV3(t, paho3.NewClientOptions().AddBroker("ws://"+a["ws"].String()+"/mqtt").
		SetClientID("browserish").SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(wait))
	require.NoError(t, err, "MQTT over WebSocket")
	ws.sub(t, "ws/#", 1)
	v5c.pub(t, &paho.Publish{Topic: "ws/hello", QoS: 1, Payload: []byte("over websocket")})
	assert.Equal(t, "over websocket", next(t, ws.msgs).payload)

	cancel()
	select {
	case d := <-v5c.server:
		assert.Equal(t, byte(mqtt.ServerShuttingDown), d.ReasonCode)
	case <-time.After(wait):
		t.Fatal("no DISCONNECT 0x8B on shutdown")
	}
	select {
	case err := <-ran:
		assert.NoError(t, err)
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
	silent.closed(t)
}

// A listener that cannot bind is a clear start-up error naming it.
func TestRun_BindErrorNamesListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	b, err := New(Config{Engine: testEngine, Listeners: listeners.Config{TCP: ln.Addr().String(), WS: listeners.Off}})
	require.NoError(t, err)
	err = b.Run(context.Background(), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "MQTT on TCP "+ln.Addr().String())
}
