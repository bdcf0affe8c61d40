//go:build floodgate.solution

package session

import (
	"bytes"
	"testing"

	"floodgate/capstone/router"
	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pairHub routes every message to one subscriber's session, as the
// broker's Route does for a topic with one subscriber, without the router
// and the broker's counters (theirs are counted in their own packages).
type pairHub struct {
	*testHub
	sub *State
}

func (h *pairHub) Open(_ *Conn, id string, _ bool) (*State, bool) {
	st := NewState(id, 0, h.Count)
	if id == "sub" {
		h.sub = st
	}
	return st, false
}

func (h *pairHub) Route(m *router.Message) bool {
	h.sub.Deliver(m, m.QoS, false, nil)
	return true
}

// publishToDelivery is the session's share of the epoll engine's hot path
// for one QoS 0 message: the publisher's loop feeds the PUBLISH it read
// (Split, decode, handle, route, Deliver to the subscriber's queue), and
// the subscriber's loop encodes it (Output). It returns the run function
// and checks that the delivery came out.
func publishToDelivery(t *testing.T, qos mqtt.QoS) func() {
	t.Helper()
	hub := &pairHub{testHub: newTestHub()}
	cfg := &Config{}
	pub, _ := drivenClient(t, cfg, hub, "pub")
	sub, _ := drivenClient(t, cfg, hub, "sub")
	payload := bytes.Repeat([]byte("p"), 64)
	in, err := (&mqtt.Publish{Topic: []byte("lat/0001"), Payload: payload, QoS: qos, PacketID: 1}).AppendTo(nil, mqtt.V311)
	require.NoError(t, err)
	var out, acks []byte
	puback := []byte{byte(mqtt.PUBACK) << 4, 2, 0, 0}
	idAt := 2 + 2 + len("lat/0001") // the packet id in a 3.1.1 QoS 1 PUBLISH of under 128 bytes
	run := func() {
		used, err := pub.Feed(in)
		if err != nil || used != len(in) {
			t.Fatalf("Feed: used %d of %d: %v", used, len(in), err)
		}
		out, _ = sub.Output(out[:0])
		acks, _ = pub.Output(acks[:0]) // the publisher's PUBACK for QoS 1
		if qos == mqtt.AtLeastOnce && len(out) > idAt+2 {
			// The subscriber acknowledges its delivery: a round trip.
			copy(puback[2:], out[idAt:idAt+2])
			if _, err := sub.Feed(puback); err != nil {
				t.Fatalf("subscriber's PUBACK: %v", err)
			}
		}
	}
	run()
	got := decodeAll(t, out)
	require.Len(t, got, 1)
	require.Equal(t, payload, got[0].(*mqtt.Publish).Payload)
	require.Equal(t, qos, got[0].(*mqtt.Publish).QoS)
	if qos == mqtt.AtLeastOnce {
		require.Len(t, decodeAll(t, acks), 1, "the publisher's PUBACK")
	}
	for range 2 * 1000 { // more than a window and a queue: every delivery is acknowledged
		run()
	}
	require.Empty(t, sub.Reason())
	require.Len(t, decodeAll(t, out), 1)
	return run
}

// Allocations per message on the publish→deliver path set the GC's pace
// at 20K msg/s, and GC cycles lay under the epoll loops' longest
// scheduling delays (BENCHMARKS.md, "Latency on the epoll engine"). This
// gate counts the session's share. Measured 2026-11-25: QoS 0 took 10
// before Split stopped building an error for the empty tail of every read,
// 8 after, 7 once Feed decoded into a pooled PUBLISH, and 6 once Output
// returned encoded QoS 0 deliveries to that pool; a QoS 1 round trip (the
// publisher's PUBACK, the subscriber's) 19, 15, 14, and 13 once an
// acknowledgement without a store stopped making the store's wait
// callback. What remains is the decoded topic and payload, the topic
// string, the router.Message, the delivery's topic bytes, the queue's
// array, and for QoS 1 the delivery's PUBLISH, the PUBACKs and the
// in-flight record. A change that adds one fails here.
func TestAllocs_PublishToDelivery(t *testing.T) {
	for _, tc := range []struct {
		qos  mqtt.QoS
		max  float64
		name string
	}{
		{mqtt.AtMostOnce, 6, "QoS0"},
		{mqtt.AtLeastOnce, 13, "QoS1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := publishToDelivery(t, tc.qos)
			got := testing.AllocsPerRun(200, run)
			t.Logf("allocations per message, %s: %.1f", tc.name, got)
			assert.LessOrEqual(t, got, tc.max, "allocations per published and delivered message")
		})
	}
}
