//go:build floodgate.solution

package router

import (
	"testing"
	"time"

	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// [MQTT-3.3.4-2] [MQTT-3.3.4-3] Overlapping subscriptions of one client
// become one delivery at the highest QoS, with every subscription id.
func TestRoute_MergesOverlappingSubscriptions(t *testing.T) {
	r := New()
	_, err := r.Subscribe("c", Sub{Filter: "a/+", QoS: 0, ID: 1})
	require.NoError(t, err)
	_, err = r.Subscribe("c", Sub{Filter: "a/#", QoS: 2, ID: 2})
	require.NoError(t, err)
	ds := r.Route(&Message{Topic: "a/b", QoS: 1}, nil, nil)
	require.Len(t, ds, 1)
	assert.Equal(t, mqtt.QoS(1), ds[0].QoS, "min(message, best subscription)")
	assert.ElementsMatch(t, []uint32{1, 2}, ds[0].SubIDs)
}

// [MQTT-3.8.3-3] No Local skips the publisher only.
func TestRoute_NoLocal(t *testing.T) {
	r := New()
	_, _ = r.Subscribe("me", Sub{Filter: "t", NoLocal: true})
	_, _ = r.Subscribe("you", Sub{Filter: "t", NoLocal: true})
	ds := r.Route(&Message{Topic: "t", From: "me"}, nil, nil)
	require.Len(t, ds, 1)
	assert.Equal(t, "you", ds[0].Client)
}

// MQTT 5.0 section 4.8.2: one member of a share group per message, in turn.
func TestRoute_ShareGroupTakesTurns(t *testing.T) {
	r := New()
	for _, c := range []string{"a", "b", "c"} {
		_, err := r.Subscribe(c, Sub{Filter: "$share/g/t", Group: "g"})
		require.NoError(t, err)
	}
	seen := map[string]int{}
	for range 6 {
		ds := r.Route(&Message{Topic: "t"}, nil, nil)
		require.Len(t, ds, 1)
		seen[ds[0].Client]++
	}
	assert.Equal(t, map[string]int{"a": 2, "b": 2, "c": 2}, seen)

	clear(seen)
	online := func(c string) bool { return c != "b" }
	for range 6 {
		ds := r.Route(&Message{Topic: "t"}, nil, online)
		require.Len(t, ds, 1)
		seen[ds[0].Client]++
	}
	assert.Zero(t, seen["b"], "an offline member is skipped")
	assert.Equal(t, 6, seen["a"]+seen["c"])

	clear(seen)
	for range 3 {
		ds := r.Route(&Message{Topic: "t"}, nil, func(string) bool { return false })
		require.Len(t, ds, 1, "with no member online, one still gets it")
	}
}

// [MQTT-3.3.2-5] An expired retained message is not sent; [MQTT-3.3.1-10]
// an empty one clears the topic.
func TestRetained_ExpiryAndClearing(t *testing.T) {
	r := New()
	now := time.Unix(1000, 0)
	r.Retain(&Message{Topic: "a", Payload: []byte("x"), Expires: now.Add(time.Second)})
	r.Retain(&Message{Topic: "b", Payload: []byte("y")})
	assert.Len(t, r.Retained("#", now), 2)
	assert.Len(t, r.Retained("#", now.Add(time.Second)), 1, "a has expired")
	r.Retain(&Message{Topic: "b"})
	assert.Equal(t, 1, r.RetainedCount())
	assert.Empty(t, r.Retained("$share/g/#", now), "no retained messages for a shared subscription")
}
