package bridge

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"
)

// Test fixtures: in-process mochi brokers on loopback, a watching hook that
// sees what the bridge acknowledged and what it delivered, and paho clients.

const (
	bridgeID = "test-bridge"
	// waitLong bounds every wait for the bridge to do something, so a
	// stub fails instead of hanging; -race and a busy machine need slack.
	waitLong = 20 * time.Second
)

// watch is a mochi hook. On the local broker it records the messages the
// bridge acknowledged (PUBACK) in order; on the upstream broker, the
// messages the bridge published. changed is signalled on every event.
type watch struct {
	mochi.HookBase
	changed chan struct{} // capacity 1

	mu         sync.Mutex // guards the fields below
	inflight   map[uint16]string
	accepted   []string // payloads the bridge acknowledged, in order
	published  []string // topic + " " + payload the bridge published, in order
	subscribed int      // SUBSCRIBE packets from the bridge
	onAccept   func(payload string)
}

func newWatch() *watch {
	return &watch{changed: make(chan struct{}, 1), inflight: map[uint16]string{}}
}

func (w *watch) ID() string { return "watch" }

func (w *watch) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnQosPublish, mochi.OnQosComplete, mochi.OnSubscribed, mochi.OnPublished}, []byte{b})
}

func (w *watch) signal() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *watch) OnSubscribed(cl *mochi.Client, _ packets.Packet, _ []byte) {
	if cl.ID != bridgeID {
		return
	}
	w.mu.Lock()
	w.subscribed++
	w.mu.Unlock()
	w.signal()
}

func (w *watch) OnQosPublish(cl *mochi.Client, pk packets.Packet, _ int64, _ int) {
	if cl.ID != bridgeID {
		return
	}
	w.mu.Lock()
	w.inflight[pk.PacketID] = string(pk.Payload)
	w.mu.Unlock()
}

func (w *watch) OnQosComplete(cl *mochi.Client, pk packets.Packet) {
	if cl.ID != bridgeID || pk.FixedHeader.Type != packets.Puback {
		return
	}
	w.mu.Lock()
	payload, ok := w.inflight[pk.PacketID]
	delete(w.inflight, pk.PacketID)
	if ok {
		w.accepted = append(w.accepted, payload)
	}
	check := w.onAccept
	w.mu.Unlock()
	if ok && check != nil {
		check(payload)
	}
	w.signal()
}

func (w *watch) OnPublished(cl *mochi.Client, pk packets.Packet) {
	if cl.ID != bridgeID+"-up" {
		return
	}
	w.mu.Lock()
	w.published = append(w.published, pk.TopicName+" "+string(pk.Payload))
	w.mu.Unlock()
	w.signal()
}

func (w *watch) snapshot() (accepted, published []string, subscribed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.accepted...), append([]string(nil), w.published...), w.subscribed
}

// until waits for cond, re-checking it whenever the hook sees an event,
// until waitLong has passed or stop is closed (the bridge has exited).
func (w *watch) until(t testing.TB, what string, stop <-chan struct{}, cond func(accepted, published []string, subscribed int) bool) {
	t.Helper()
	deadline := time.NewTimer(waitLong)
	defer deadline.Stop()
	for {
		if cond(w.snapshot()) {
			return
		}
		select {
		case <-w.changed:
		case <-stop:
			if cond(w.snapshot()) {
				return
			}
			t.Fatalf("the bridge stopped before %s", what)
		case <-deadline.C:
			a, p, s := w.snapshot()
			t.Fatalf("gave up after %v waiting for %s (accepted %d, published upstream %d, subscribed %d)", waitLong, what, len(a), len(p), s)
		}
	}
}

// broker is an in-process mochi broker on loopback.
type broker struct {
	addr  string
	srv   *mochi.Server
	watch *watch
	once  sync.Once // mochi's Close panics when called twice
}

// startBroker starts a broker on addr ("127.0.0.1:0" for any port) and stops
// it when the test ends.
func startBroker(t testing.TB, addr string, w *watch) *broker {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, srv.AddHook(new(auth.AllowHook), nil))
	require.NoError(t, srv.AddHook(w, nil))
	require.NoError(t, srv.AddListener(listeners.NewNet("t", ln)))
	require.NoError(t, srv.Serve())
	b := &broker{addr: ln.Addr().String(), srv: srv, watch: w}
	t.Cleanup(b.stop)
	return b
}

func (b *broker) stop() { b.once.Do(func() { _ = b.srv.Close() }) }

// freeAddr returns a loopback address nothing listens on: the upstream,
// before it is started.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// publisher connects a paho client to addr for the test's duration.
func publisher(t testing.TB, addr string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("test-publisher").SetAutoReconnect(false))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(waitLong), "connect timed out")
	require.NoError(t, tok.Error())
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func publish(t testing.TB, c paho.Client, topic, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	require.True(t, tok.WaitTimeout(waitLong), "publish timed out")
	require.NoError(t, tok.Error())
}

// running is an in-process bridge started by runBridge.
type running struct {
	*Bridge
	exited <-chan struct{} // closed when Run has returned
	err    error           // Run's result, once exited is closed
	stop   func()          // cancels Run and waits for it; idempotent
}

// runBridge runs an in-process bridge until stop is called or the test ends.
func runBridge(t testing.TB, cfg Config) *running {
	t.Helper()
	b, err := New(cfg, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	r := &running{Bridge: b, exited: done}
	go func() {
		defer close(done)
		r.err = b.Run(ctx)
	}()
	r.stop = func() { cancel(); <-done }
	t.Cleanup(r.stop)
	return r
}

// fileContains reports whether dir's spool log holds b.
func fileContains(dir string, b []byte) bool {
	data, err := os.ReadFile(filepath.Join(dir, logName))
	return err == nil && bytes.Contains(data, b)
}
