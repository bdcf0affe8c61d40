//go:build floodgate.solution

package session

import (
	"bytes"
	"strconv"
	"sync"
	"testing"

	"floodgate/capstone/queue"
	"floodgate/capstone/router"
	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testHub is a Hub with a session per client id and counters; nothing is
// routed.
type testHub struct {
	r      *router.Router
	mu     sync.Mutex
	counts map[string]int
}

func newTestHub() *testHub { return &testHub{r: router.New(), counts: map[string]int{}} }

func (h *testHub) Open(_ *Conn, id string, _ bool) (*State, bool) {
	return NewState(id, 0, h.Count), false
}
func (h *testHub) Route(*router.Message) bool       { return false }
func (h *testHub) Router() *router.Router           { return h.r }
func (h *testHub) Retain(*router.Message)           {}
func (h *testHub) Changed(*Conn, *State)            {}
func (h *testHub) Closed(*Conn, *State, *mqtt.Will) {}
func (h *testHub) Count(name string)                { h.mu.Lock(); h.counts[name]++; h.mu.Unlock() }
func (h *testHub) count(name string) int            { h.mu.Lock(); defer h.mu.Unlock(); return h.counts[name] }

// drivenClient is a driven Conn after a successful CONNECT (MQTT 3.1.1),
// as an event loop holds it, with its CONNACK already written; wakes
// counts its wake calls.
func drivenClient(t *testing.T, cfg *Config, hub Hub, id string) (c *Conn, wakes *int) {
	t.Helper()
	wakes = new(int)
	c = NewDriven(cfg, hub, mqtt.Success, func() { *wakes++ })
	b, err := (&mqtt.Connect{ClientID: id, CleanStart: true}).AppendTo(nil, mqtt.V311)
	require.NoError(t, err)
	h, body, _, err := Split(b, 0)
	require.NoError(t, err)
	require.NoError(t, c.Connect(h, body))
	out, end := c.Output(nil)
	require.False(t, end)
	p := decodeAll(t, out)
	require.Len(t, p, 1)
	require.IsType(t, &mqtt.Connack{}, p[0])
	t.Cleanup(c.Finish)
	return c, wakes
}

// decodeAll decodes the packets in b (MQTT 3.1.1).
func decodeAll(t *testing.T, b []byte) []mqtt.Packet {
	t.Helper()
	var out []mqtt.Packet
	for len(b) > 0 {
		h, body, n, err := Split(b, 0)
		require.NoError(t, err)
		p, err := mqtt.DecodePacket(h, body, mqtt.V311)
		require.NoError(t, err)
		out = append(out, p)
		b = b[n:]
	}
	return out
}

// The slow-consumer policy is a bytes budget: a client that keeps reading
// takes a burst of many small messages (five times the old cap of 1,000
// packets in the queue at once) and stays, while a client that has
// stopped reading is cut off once its queue holds the budget, with the
// limit that tripped counted. The loop is simulated: Output is "the
// socket took everything", and the stalled client's loop never gets to
// call it. No network, no time.
func TestBudget_FastConsumerKeptStalledDropped(t *testing.T) {
	hub := newTestHub()
	cfg := &Config{} // the defaults: 1 MiB, 16,384 packets
	fast, fastWakes := drivenClient(t, cfg, hub, "fast")
	stalled, _ := drivenClient(t, cfg, hub, "stalled")

	payload := bytes.Repeat([]byte("p"), 64)
	m := &router.Message{Topic: "fanin/0001", Payload: payload}
	size := queuedSize(&mqtt.Publish{Topic: []byte(m.Topic), Payload: payload})
	fits := queue.DefaultMaxBytes / size // messages the budget holds
	require.Greater(t, fits, 5000, "the burst must fit the default budget")

	const burst = 5000
	delivered := 0
	for round := range 4 {
		for range burst {
			fast.st.Deliver(m, mqtt.AtMostOnce, false, nil)
			stalled.st.Deliver(m, mqtt.AtMostOnce, false, nil)
		}
		// The fast client's loop runs once per burst: all of it is written.
		require.Empty(t, fast.Reason(), "round %d: a fast consumer was cut off", round)
		out, end := fast.Output(nil)
		require.False(t, end)
		got := decodeAll(t, out)
		require.Len(t, got, burst, "round %d", round)
		for _, p := range got {
			require.Equal(t, payload, p.(*mqtt.Publish).Payload)
		}
		delivered += len(got)
		if (round+1)*burst <= fits {
			require.Empty(t, stalled.Reason(), "round %d: the stalled client is within its budget", round)
		} else {
			require.Equal(t, ReasonSlowConsumer, stalled.Reason(), "round %d: over its budget", round)
		}
	}
	assert.Equal(t, 4*burst, delivered)
	assert.Positive(t, *fastWakes)

	// The stalled client went over its budget with message fits+1 and was
	// cut off then; the rest was never queued.
	assert.Equal(t, ReasonSlowConsumer, stalled.Reason())
	assert.Equal(t, 1, hub.count("disconnect_"+ReasonSlowConsumer), "one client dropped, once")
	assert.Equal(t, 1, hub.count(ReasonSlowConsumer+"_bytes"), "the bytes budget tripped")
	assert.Zero(t, hub.count(ReasonSlowConsumer+"_packets"))
	out, end := stalled.Output(nil)
	assert.True(t, end, "a slow consumer's socket is closed at once")
	assert.Empty(t, out, "and what waits for it is discarded")
}

// The budget counts bytes exactly: the message that takes the queue past
// it is the one refused, whatever the count of packets.
func TestBudget_ExactBoundary(t *testing.T) {
	hub := newTestHub()
	payload := bytes.Repeat([]byte("x"), 1000)
	m := &router.Message{Topic: "t", Payload: payload}
	size := queuedSize(&mqtt.Publish{Topic: []byte("t"), Payload: payload})
	cfg := &Config{MaxQueuedBytes: 10 * size}
	c, _ := drivenClient(t, cfg, hub, "c")
	for i := range 10 {
		c.st.Deliver(m, mqtt.AtMostOnce, false, nil)
		require.Empty(t, c.Reason(), "message %d fits", i+1)
	}
	c.st.Deliver(m, mqtt.AtMostOnce, false, nil)
	assert.Equal(t, ReasonSlowConsumer, c.Reason())
	assert.Equal(t, 1, hub.count(ReasonSlowConsumer+"_bytes"))
}

// The packet cap stays as a backstop: many empty messages, each costing
// memory beyond its few bytes, trip it long before the bytes do.
func TestBudget_PacketBackstop(t *testing.T) {
	hub := newTestHub()
	cfg := &Config{MaxQueued: 100}
	c, _ := drivenClient(t, cfg, hub, "c")
	for i := range 100 {
		c.st.Deliver(&router.Message{Topic: "t/" + strconv.Itoa(i)}, mqtt.AtMostOnce, false, nil)
	}
	require.Empty(t, c.Reason())
	c.st.Deliver(&router.Message{Topic: "t/x"}, mqtt.AtMostOnce, false, nil)
	assert.Equal(t, ReasonSlowConsumer, c.Reason())
	assert.Equal(t, 1, hub.count(ReasonSlowConsumer+"_packets"))
	assert.Zero(t, hub.count(ReasonSlowConsumer+"_bytes"))
}

// A driven Conn makes no channel unless someone waits on Done, and Done
// works before and after the end.
func TestConn_DoneLazy(t *testing.T) {
	hub := newTestHub()
	cfg := &Config{}
	c := NewDriven(cfg, hub, mqtt.Success, func() {})
	assert.Nil(t, c.done)
	d := c.Done()
	select {
	case <-d:
		t.Fatal("Done closed before the end")
	default:
	}
	c.Fail(errTestEOF{})
	c.Finish()
	<-d
	late := NewDriven(cfg, hub, mqtt.Success, func() {})
	late.Fail(errTestEOF{})
	late.Finish()
	assert.Nil(t, late.done, "nobody asked: no channel was made")
	<-late.Done()
}

type errTestEOF struct{}

func (errTestEOF) Error() string { return "EOF" }

// A session's subscriptions are a slice, indexed by filter once there are
// many: replacing, removing and listing give the same answers either way.
func TestState_SubscriptionsSliceAndIndex(t *testing.T) {
	for _, n := range []int{3, 3 * subIndexFrom} {
		s := NewState("c", 0, nil)
		for i := range n {
			assert.False(t, s.subscribe(router.Sub{Filter: "f/" + strconv.Itoa(i)}), "n=%d: new %d", n, i)
		}
		assert.True(t, s.subscribe(router.Sub{Filter: "f/1", QoS: 2}), "n=%d: replaced", n)
		assert.True(t, s.unsubscribe("f/0"), "n=%d", n)
		assert.False(t, s.unsubscribe("f/0"), "n=%d: gone", n)
		assert.True(t, s.unsubscribe("f/"+strconv.Itoa(n-1)), "n=%d: the last one", n)
		assert.False(t, s.subscribe(router.Sub{Filter: "f/0"}), "n=%d: new again", n)
		got := map[string]mqtt.QoS{}
		for _, sub := range s.Subscriptions() {
			got[sub.Filter] = sub.QoS
		}
		want := map[string]mqtt.QoS{"f/0": 0, "f/1": 2}
		for i := 2; i < n-1; i++ {
			want["f/"+strconv.Itoa(i)] = 0
		}
		assert.Equal(t, want, got, "n=%d", n)
		for f := range want {
			assert.True(t, s.unsubscribe(f), "n=%d: %s", n, f)
		}
		assert.Empty(t, s.Subscriptions())
	}
}

// QoS 1 messages beyond the in-flight window wait in the session's list,
// bounded in messages: an online client whose list is full is a slow
// consumer too, counted as such.
func TestBudget_PendingListFull(t *testing.T) {
	hub := newTestHub()
	cfg := &Config{MaxInflight: 1}
	c, _ := drivenClient(t, cfg, hub, "c")
	c.st.maxQueue = 3
	m := &router.Message{Topic: "t", Payload: []byte("x"), QoS: mqtt.AtLeastOnce}
	for i := range 1 + 3 { // one in flight, three waiting
		c.st.Deliver(m, mqtt.AtLeastOnce, false, nil)
		require.Empty(t, c.Reason(), "message %d", i+1)
	}
	c.st.Deliver(m, mqtt.AtLeastOnce, false, nil)
	assert.Equal(t, ReasonSlowConsumer, c.Reason())
	assert.Equal(t, 1, hub.count(ReasonSlowConsumer+"_pending"))
}

// A Config filled by Defaults is only read by NewConn and NewDriven, so
// connections made at once may share it (run with -race).
func TestConfig_DefaultsShared(t *testing.T) {
	cfg := &Config{}
	cfg.Defaults()
	want := *cfg
	hub := newTestHub()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := NewDriven(cfg, hub, mqtt.Success, func() {})
			c.Fail(errTestEOF{})
			c.Finish()
		}()
	}
	wg.Wait()
	assert.Equal(t, want.MaxPacketSize, cfg.MaxPacketSize)
	assert.Equal(t, want.WriteTimeout, cfg.WriteTimeout)
	assert.Equal(t, want.Admission, cfg.Admission)
}
