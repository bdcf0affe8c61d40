package websocket

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// guard bounds every network wait in these tests, so that an unfinished
// stub fails instead of hanging. It is a deadline, never a measurement.
const guard = 10 * time.Second

// MQTT 3.1.1 packets, byte by byte.
var (
	// CONNECT: type 1, remaining length 17, "MQTT", level 4, flags 0x02
	// (clean session), keepalive 60, client id "dev-1".
	connectPacket = []byte{0x10, 17, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 5, 'd', 'e', 'v', '-', '1'}
	connackPacket = []byte{0x20, 2, 0, 0} // session present 0, return code 0 accepted
	// SUBSCRIBE: type 8 with flags 0010, remaining length 12, packet id 1,
	// filter "a/#" at QoS 0 and filter "b" at QoS 1.
	subscribePacket = []byte{0x82, 12, 0, 1, 0, 3, 'a', '/', '#', 0, 0, 1, 'b', 1}
	subackPacket    = []byte{0x90, 4, 0, 1, 0, 0} // packet id 1, both granted QoS 0
	pingreqPacket   = []byte{0xC0, 0}
	pingrespPacket  = []byte{0xD0, 0}
	disconnPacket   = []byte{0xE0, 0}
)

// startHandler serves a new Handler with an httptest server on 127.0.0.1:0
// and returns it with its ws:// URL. Cleanup closes both.
func startHandler(t *testing.T, cfg Config, serve func(net.Conn)) (*Handler, string) {
	t.Helper()
	h, err := New(cfg, serve)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	return h, "ws" + strings.TrimPrefix(srv.URL, "http") + "/mqtt"
}

// dial opens a WebSocket offering the given subprotocols, with its own HTTP
// transport so that no idle connection outlives the test.
func dial(t *testing.T, url string, subprotocols ...string) (*ws.Conn, *http.Response, error) {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	c, resp, err := ws.Dial(ctx, url, &ws.DialOptions{
		HTTPClient:   &http.Client{Transport: tr, Timeout: guard},
		Subprotocols: subprotocols,
	})
	if c != nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	require.NotNil(t, resp)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// readBytes reads binary messages from c until it has n bytes.
func readBytes(t *testing.T, c *ws.Conn, n int) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	var got []byte
	for len(got) < n {
		typ, msg, err := c.Read(ctx)
		require.NoError(t, err, "after %d of %d bytes", len(got), n)
		require.Equal(t, ws.MessageBinary, typ, "MQTT travels in binary messages [MQTT-6.0.0-1]")
		got = append(got, msg...)
	}
	return got
}

// closeStatus reads from c until the server closes it, and returns the
// close status the server sent (-1 if the connection just dropped).
func closeStatus(t *testing.T, c *ws.Conn) ws.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			require.NoError(t, ctx.Err(), "the server did not close the connection")
			return ws.CloseStatus(err)
		}
	}
}

func serveResponder(t *testing.T) func(net.Conn) {
	return func(c net.Conn) {
		if err := respond(c); err != nil {
			t.Logf("responder: %v", err)
		}
	}
}

func TestTask1_Subprotocol(t *testing.T) {
	t.Run("offersMQTT", func(t *testing.T) {
		for _, tc := range []struct {
			values []string
			want   bool
		}{
			{[]string{"mqtt"}, true},
			{[]string{"foo, mqtt"}, true},
			{[]string{"foo", " bar ,mqtt "}, true}, // the header may be repeated
			{nil, false},
			{[]string{""}, false},
			{[]string{"mqttv3.1"}, false},
			{[]string{"mqtt5, xmqtt"}, false},
		} {
			h := http.Header{}
			for _, v := range tc.values {
				h.Add("Sec-WebSocket-Protocol", v)
			}
			assert.Equal(t, tc.want, offersMQTT(h), "%q", tc.values)
		}
	})

	_, url := startHandler(t, Config{}, serveResponder(t))

	t.Run("no subprotocol is refused with 400", func(t *testing.T) {
		c, resp, err := dial(t, url)
		require.Error(t, err)
		assert.Nil(t, c)
		require.NotNil(t, resp)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Contains(t, body(t, resp), `"mqtt" subprotocol`)
	})

	t.Run("another subprotocol is refused with 400", func(t *testing.T) {
		_, resp, err := dial(t, url, "mqttv3.1", "wamp")
		require.Error(t, err)
		require.NotNil(t, resp)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})

	t.Run("mqtt among others is selected", func(t *testing.T) {
		c, resp, err := dial(t, url, "wamp", "mqtt")
		require.NoError(t, err)
		assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
		assert.Equal(t, "mqtt", c.Subprotocol(), "[MQTT-6.0.0-4]")
		c.Close(ws.StatusNormalClosure, "")
	})
}

func TestTask2_NetConn(t *testing.T) {
	t.Run("packets do not follow message boundaries", func(t *testing.T) {
		remote := make(chan string, 1)
		_, url := startHandler(t, Config{}, func(c net.Conn) {
			remote <- c.RemoteAddr().String()
			serveResponder(t)(c)
		})
		c, _, err := dial(t, url, "mqtt")
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()

		// CONNECT split across two messages [MQTT-6.0.0-2].
		require.NoError(t, c.Write(ctx, ws.MessageBinary, connectPacket[:5]))
		require.NoError(t, c.Write(ctx, ws.MessageBinary, connectPacket[5:]))
		assert.Equal(t, connackPacket, readBytes(t, c, len(connackPacket)))

		// SUBSCRIBE and PINGREQ in one message.
		both := append(append([]byte(nil), subscribePacket...), pingreqPacket...)
		require.NoError(t, c.Write(ctx, ws.MessageBinary, both))
		want := append(append([]byte(nil), subackPacket...), pingrespPacket...)
		assert.Equal(t, want, readBytes(t, c, len(want)))

		select {
		case addr := <-remote:
			assert.True(t, strings.HasPrefix(addr, "127.0.0.1:"), "RemoteAddr is the client's real address, got %q", addr)
		case <-ctx.Done():
			t.Fatal("serve was never called")
		}

		// DISCONNECT: the responder returns, and the handler closes normally.
		require.NoError(t, c.Write(ctx, ws.MessageBinary, disconnPacket))
		assert.Equal(t, ws.StatusNormalClosure, closeStatus(t, c))
	})

	t.Run("a text message closes the connection", func(t *testing.T) {
		_, url := startHandler(t, Config{}, serveResponder(t))
		c, _, err := dial(t, url, "mqtt")
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		require.NoError(t, c.Write(ctx, ws.MessageText, connectPacket))
		assert.Equal(t, ws.StatusUnsupportedData, closeStatus(t, c), "[MQTT-6.0.0-1]")
	})

	t.Run("a message over the read limit closes the connection", func(t *testing.T) {
		_, url := startHandler(t, Config{ReadLimit: 64}, serveResponder(t))
		c, _, err := dial(t, url, "mqtt")
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		big := append([]byte{0x10, 98}, bytes.Repeat([]byte{0}, 98)...) // a 100-byte "CONNECT"
		require.NoError(t, c.Write(ctx, ws.MessageBinary, big))
		assert.Equal(t, ws.StatusMessageTooBig, closeStatus(t, c))
	})
}

func TestTask3_Close(t *testing.T) {
	const n = 3
	started := make(chan struct{}, n)
	finished := make(chan struct{}, n)
	h, url := startHandler(t, Config{}, func(c net.Conn) {
		started <- struct{}{}
		_, _ = io.Copy(io.Discard, c) // until the connection fails
		finished <- struct{}{}
	})

	var clients []*ws.Conn
	for range n {
		c, _, err := dial(t, url, "mqtt")
		require.NoError(t, err)
		clients = append(clients, c)
	}
	timeout := time.NewTimer(guard)
	defer timeout.Stop()
	for range n {
		select {
		case <-started:
		case <-timeout.C:
			t.Fatal("serve was not called for every connection")
		}
	}
	assert.Equal(t, n, h.Active())

	require.NoError(t, h.Close())
	assert.Len(t, finished, n, "Close must wait for every serve callback to return")
	assert.Equal(t, 0, h.Active())
	for _, c := range clients {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		_, _, err := c.Read(ctx)
		cancel()
		assert.Error(t, err, "the client sees its connection end")
	}

	_, resp, err := dial(t, url, "mqtt")
	require.Error(t, err, "a closed handler accepts nothing")
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Contains(t, body(t, resp), "closed")

	assert.NoError(t, h.Close(), "Close twice is fine")
}

func TestTask4_ServePaho(t *testing.T) {
	t.Run("a paho client over ws://", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		served := make(chan string, 1)
		h, err := New(Config{}, func(c net.Conn) {
			served <- c.RemoteAddr().String()
			serveResponder(t)(c)
		})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- h.Serve(ctx, ln) }()

		opts := paho.NewClientOptions().
			AddBroker("ws://" + ln.Addr().String() + "/mqtt").
			SetClientID("dev-ws-1").
			SetAutoReconnect(false).
			SetConnectTimeout(guard)
		client := paho.NewClient(opts)
		tok := client.Connect()
		require.True(t, tok.WaitTimeout(guard), "CONNECT timed out")
		require.NoError(t, tok.Error())

		got := make(chan paho.Message, 1)
		tok = client.Subscribe("echo/#", 0, func(_ paho.Client, m paho.Message) { got <- m })
		require.True(t, tok.WaitTimeout(guard), "SUBSCRIBE timed out")
		require.NoError(t, tok.Error())
		tok = client.Publish("echo/dev-ws-1", 0, false, "21.5")
		require.True(t, tok.WaitTimeout(guard), "PUBLISH timed out")
		require.NoError(t, tok.Error())

		timeout := time.NewTimer(guard)
		defer timeout.Stop()
		select {
		case m := <-got:
			assert.Equal(t, "echo/dev-ws-1", m.Topic())
			assert.Equal(t, "21.5", string(m.Payload()))
		case <-timeout.C:
			t.Fatal("the echoed PUBLISH never arrived")
		}
		assert.True(t, strings.HasPrefix(<-served, "127.0.0.1:"))
		client.Disconnect(100)

		cancel()
		select {
		case err := <-errc:
			assert.NoError(t, err, "Serve returns nil once ctx is cancelled")
		case <-timeout.C:
			t.Fatal("Serve did not return after cancel")
		}
		_, err = net.DialTimeout("tcp", ln.Addr().String(), guard)
		assert.Error(t, err, "Serve closes its listener")
	})

	t.Run("only Config.Path is served", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		h, err := New(Config{Path: "/ws"}, serveResponder(t))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- h.Serve(ctx, ln) }()
		defer func() {
			cancel()
			<-errc
		}()

		base := "ws://" + ln.Addr().String()
		_, resp, err := dial(t, base+"/mqtt", "mqtt")
		require.Error(t, err)
		require.NotNil(t, resp)
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
		c, _, err := dial(t, base+"/ws", "mqtt")
		require.NoError(t, err)
		c.Close(ws.StatusNormalClosure, "")
	})

	t.Run("a failed listener ends Serve with an error", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		h, err := New(Config{}, serveResponder(t))
		require.NoError(t, err)
		err = h.Serve(context.Background(), ln)
		require.Error(t, err)
		assert.Contains(t, err.Error(), addr)
	})
}

func TestNewValidates(t *testing.T) {
	_, err := New(Config{}, nil)
	assert.ErrorIs(t, err, ErrNoServe)
	for _, cfg := range []Config{{Path: "mqtt"}, {ReadLimit: -2}, {HandshakeTimeout: -time.Second}} {
		_, err := New(cfg, func(net.Conn) {})
		assert.Error(t, err, "%+v", cfg)
	}
	h, err := New(Config{}, func(net.Conn) {})
	require.NoError(t, err)
	assert.Equal(t, "/mqtt", h.cfg.Path)
	assert.Equal(t, int64(1<<20), h.cfg.ReadLimit)
	assert.Equal(t, 10*time.Second, h.cfg.HandshakeTimeout)
}
