//go:build floodgate.solution

package broker

import (
	"context"
	"net"
	"testing"
	"time"

	mqtt "floodgate/ch03-networking/03-mqtt"
	"floodgate/ch03-networking/03-mqtt/mqtttest"
	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
)

// wait bounds every wait in these tests, so a broken broker fails a test
// instead of hanging it.
const wait = 5 * time.Second

// startBroker serves a new broker on 127.0.0.1:0 until the test ends.
func startBroker(t *testing.T, cfg Config) (*Broker, string) {
	t.Helper()
	if cfg.Engine == "" {
		cfg.Engine = testEngine
		// Not with a sink: the two are refused together (Config.Epoll).
		cfg.Epoll.PrivateFDs = cfg.Epoll.PrivateFDs || testPrivateFDs && cfg.Sink == nil
	}
	b, err := New(cfg)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- b.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			require.NoError(t, err)
		case <-time.After(wait):
			t.Error("Serve did not return after its context ended")
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
	props    *paho.PublishProperties
}

// v3 is an MQTT 3.1.1 client (eclipse/paho.mqtt.golang).
type v3 struct {
	paho3.Client
	msgs           chan msg
	lost           chan error
	sessionPresent bool
}

func v3opts(addr, id string, clean bool) *paho3.ClientOptions {
	return paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetCleanSession(clean).SetAutoReconnect(false).SetConnectRetry(false).
		SetKeepAlive(0).SetConnectTimeout(wait).SetOrderMatters(true)
}

func connectV3(t *testing.T, addr, id string, clean bool) *v3 {
	t.Helper()
	c, err := tryV3(t, v3opts(addr, id, clean))
	require.NoError(t, err, "CONNECT %s", id)
	return c
}

func tryV3(t *testing.T, opts *paho3.ClientOptions) (*v3, error) {
	t.Helper()
	c := &v3{msgs: make(chan msg, 1000), lost: make(chan error, 1)}
	opts.SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) {
		c.msgs <- msg{topic: m.Topic(), payload: string(m.Payload()), qos: m.Qos(), retained: m.Retained(), dup: m.Duplicate()}
	}).SetConnectionLostHandler(func(_ paho3.Client, err error) { c.lost <- err })
	c.Client = paho3.NewClient(opts)
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(wait), "CONNECT timed out")
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	c.sessionPresent = tok.(*paho3.ConnectToken).SessionPresent()
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

func done(t *testing.T, tok paho3.Token, what string) {
	t.Helper()
	require.True(t, tok.WaitTimeout(wait), "%s timed out", what)
	require.NoError(t, tok.Error(), what)
}

func (c *v3) sub(t *testing.T, filter string, qos byte) {
	t.Helper()
	done(t, c.Subscribe(filter, qos, nil), "SUBSCRIBE "+filter)
}

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

// none requires that nothing is waiting in ch. Call it after a message
// that was sent later has arrived (ordering makes the check sound).
func none(t *testing.T, ch <-chan msg, why string) {
	t.Helper()
	select {
	case m := <-ch:
		require.FailNow(t, why, "got %+v", m)
	default:
	}
}

// v5 is an MQTT 5.0 client (eclipse/paho.golang).
type v5 struct {
	*paho.Client
	msgs    chan msg
	connack *paho.Connack
	server  chan *paho.Disconnect
}

func connectV5(t *testing.T, addr, id string, cp paho.Connect) *v5 {
	t.Helper()
	c, err := tryV5(t, addr, id, cp, nil)
	require.NoError(t, err, "CONNECT %s (5.0)", id)
	return c
}

// tryV5 connects; cfg, if set, is used as the client config (Conn and the
// handlers are filled in).
func tryV5(t *testing.T, addr, id string, cp paho.Connect, cfg *paho.ClientConfig) (*v5, error) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	c := &v5{msgs: make(chan msg, 1000), server: make(chan *paho.Disconnect, 1)}
	if cfg == nil {
		cfg = &paho.ClientConfig{}
	}
	cfg.Conn = nc
	cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
		p := pr.Packet
		c.msgs <- msg{p.Topic, string(p.Payload), p.QoS, p.Retain, p.Duplicate(), p.Properties}
		return true, nil
	}}
	cfg.OnServerDisconnect = func(d *paho.Disconnect) { c.server <- d }
	c.Client = paho.NewClient(*cfg)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cp.ClientID = id
	c.connack, err = c.Connect(ctx, &cp)
	if err != nil {
		nc.Close()
		<-c.Done()
		return nil, err
	}
	t.Cleanup(func() {
		c.Disconnect(&paho.Disconnect{})
		select {
		case <-c.Done():
		case <-time.After(wait):
			t.Error("paho.golang client did not stop")
		}
	})
	return c, nil
}

func (c *v5) sub(t *testing.T, s *paho.Subscribe) *paho.Suback {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ack, err := c.Subscribe(ctx, s)
	require.NoError(t, err)
	return ack
}

func (c *v5) pub(t *testing.T, p *paho.Publish) *paho.PublishResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	r, err := c.Publish(ctx, p)
	require.NoError(t, err)
	return r
}

// raw is a client that speaks packets through the chapter 3 codec (the
// shared mqtttest.Conn), for what the client libraries hide or refuse to
// do. nc and r are its connection and reader, for tests that reach past it.
type raw struct {
	*mqtttest.Conn
	nc net.Conn
	r  *mqtt.Reader
}

func newRaw(c *mqtttest.Conn) *raw { return &raw{Conn: c, nc: c.NetConn, r: c.Reader} }

// dialRaw dials addr and sends nothing.
func dialRaw(t *testing.T, addr string) *raw {
	t.Helper()
	return newRaw(mqtttest.Dial(t, addr, wait))
}

// connectRaw dials and sends cp (3.1.1 unless cp.Version says otherwise),
// returning the CONNACK.
func connectRaw(t *testing.T, addr string, cp *mqtt.Connect) (*raw, *mqtt.Connack) {
	t.Helper()
	c, ack := mqtttest.Connect(t, addr, cp, wait)
	return newRaw(c), ack
}

// send, write, next and closed are mqtttest's Send, Write, Next and Closed
// (closed returns the DISCONNECT the broker sent before closing, if any).

func (c *raw) send(t *testing.T, p mqtt.Packet) {
	t.Helper()
	c.Send(t, p)
}

func (c *raw) write(t *testing.T, b []byte) {
	t.Helper()
	c.Write(t, b)
}

func (c *raw) next(t *testing.T) mqtt.Packet {
	t.Helper()
	return c.Next(t)
}

func (c *raw) closed(t *testing.T) *mqtt.Disconnect {
	t.Helper()
	return c.Closed(t)
}

// counter returns the broker's counter name.
func counter(b *Broker, name string) uint64 { return b.Counts()[name] }
