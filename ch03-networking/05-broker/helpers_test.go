package broker

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	mqtt "floodgate/ch03-networking/03-mqtt"
	"floodgate/ch03-networking/03-mqtt/mqtttest"
	topics "floodgate/ch03-networking/04-topics"
	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
)

// wait bounds every wait in these tests: a message that should come comes in
// milliseconds, so a stub fails after this long instead of hanging.
const wait = 3 * time.Second

// startBroker serves a new broker on 127.0.0.1:0 until the test ends.
func startBroker(t *testing.T, cfg Config) (*Broker, string) {
	t.Helper()
	b, err := New(cfg)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- b.Serve(ln) }()
	t.Cleanup(func() {
		require.NoError(t, b.Close())
		select {
		case err := <-served:
			require.ErrorIs(t, err, ErrClosed)
		case <-time.After(wait):
			t.Error("Serve did not return after Close")
		}
	})
	return b, ln.Addr().String()
}

// msg is a received message, from either client library.
type msg struct {
	topic    string
	payload  string
	qos      byte
	retained bool
	dup      bool
}

// v3 is an MQTT 3.1.1 client (eclipse/paho.mqtt.golang) and what it received.
type v3 struct {
	paho3.Client
	msgs           chan msg
	lost           chan error
	sessionPresent bool
}

func connectV3(t *testing.T, addr, id string, clean bool) *v3 {
	t.Helper()
	c := &v3{msgs: make(chan msg, 100), lost: make(chan error, 1)}
	opts := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetCleanSession(clean).SetAutoReconnect(false).SetConnectRetry(false).
		SetKeepAlive(0).SetConnectTimeout(wait).SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) {
			c.msgs <- msg{m.Topic(), string(m.Payload()), m.Qos(), m.Retained(), m.Duplicate()}
		}).
		SetConnectionLostHandler(func(_ paho3.Client, err error) { c.lost <- err })
	c.Client = paho3.NewClient(opts)
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(wait), "CONNECT %s timed out", id)
	require.NoError(t, tok.Error(), "CONNECT %s", id)
	c.sessionPresent = tok.(*paho3.ConnectToken).SessionPresent()
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func done(t *testing.T, tok paho3.Token, what string) {
	t.Helper()
	require.True(t, tok.WaitTimeout(wait), "%s timed out", what)
	require.NoError(t, tok.Error(), what)
}

// sub subscribes with the default handler collecting the messages.
func (c *v3) sub(t *testing.T, filter string, qos byte) {
	t.Helper()
	done(t, c.Subscribe(filter, qos, nil), "SUBSCRIBE "+filter)
}

// pub publishes and waits for the token: for QoS 1 that is the broker's
// PUBACK, sent after the message was routed.
func (c *v3) pub(t *testing.T, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	done(t, c.Publish(topic, qos, retain, payload), "PUBLISH "+topic)
}

// next returns the next message received, or fails the test.
func next(t *testing.T, ch <-chan msg) msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(wait):
		require.FailNow(t, "no message arrived")
		return msg{}
	}
}

// v5 is an MQTT 5.0 client (eclipse/paho.golang).
type v5 struct {
	*paho.Client
	msgs    chan msg
	connack *paho.Connack
}

func connectV5(t *testing.T, addr, id string, cp paho.Connect) *v5 {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	c := &v5{msgs: make(chan msg, 100)}
	c.Client = paho.NewClient(paho.ClientConfig{
		Conn: nc,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			p := pr.Packet
			c.msgs <- msg{p.Topic, string(p.Payload), p.QoS, p.Retain, p.Duplicate()}
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cp.ClientID = id
	c.connack, err = c.Connect(ctx, &cp)
	if err != nil {
		nc.Close()
	}
	require.NoError(t, err, "CONNECT %s (5.0)", id)
	t.Cleanup(func() {
		c.Disconnect(&paho.Disconnect{})
		select {
		case <-c.Done():
		case <-time.After(wait):
			t.Error("paho.golang client did not stop")
		}
	})
	return c
}

func (c *v5) sub(t *testing.T, opts ...paho.SubscribeOptions) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: opts})
	require.NoError(t, err)
}

func (c *v5) pub(t *testing.T, p *paho.Publish) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err := c.Publish(ctx, p)
	require.NoError(t, err)
}

// dialRaw connects a raw client (mqtttest: packets through the 03-mqtt
// codec), for what the client libraries hide: not acknowledging, DUP flags,
// packet ids, and dropping the socket without DISCONNECT.
func dialRaw(t *testing.T, addr string, cp *mqtt.Connect) (*mqtttest.Conn, *mqtt.Connack) {
	t.Helper()
	return mqtttest.Connect(t, addr, cp, wait)
}

// drop ends the connection without DISCONNECT and waits until the broker has
// finished with it: a second CONNECT is a protocol error [MQTT-3.1.0-2], so
// the broker closes the connection, and a closed socket on our side proves
// the broker is done. (Closing our end alone would race with deliveries.)
func drop(t *testing.T, c *mqtttest.Conn) {
	t.Helper()
	c.Send(t, &mqtt.Connect{Version: c.Reader.Version(), ClientID: "again"})
	c.EOF(t)
	c.NetConn.Close()
}

// needParts fails the test with a clear message when the parts this lab is
// built from, your codec (lab 3) and your trie (lab 4), do not work yet.
func needParts(t *testing.T) {
	t.Helper()
	buf, err := (&mqtt.Connect{Version: mqtt.V311, ClientID: "x"}).AppendTo(nil, mqtt.V311)
	if err == nil {
		_, err = mqtt.NewReader(bytes.NewReader(buf), mqtt.Config{}).ReadPacket()
	}
	if err != nil {
		t.Fatalf("this broker runs on your MQTT codec, which cannot encode and read a CONNECT yet (%v): "+
			"finish ch03-networking/03-mqtt first", err)
	}
	var tr topics.Trie[int, int]
	if _, err := tr.Subscribe("a/+", 1, 1); err != nil || len(tr.Match("a/b", nil)) != 1 || !topics.MatchFilter("a/+", "a/b") {
		t.Fatalf("this broker runs on your topic trie, which does not match yet (%v): "+
			"finish ch03-networking/04-topics first", err)
	}
}
