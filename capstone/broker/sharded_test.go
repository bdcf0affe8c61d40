//go:build linux && floodgate.solution

package broker

import (
	"fmt"
	"testing"

	"floodgate/capstone/admission"
	"floodgate/capstone/engine"
	"floodgate/capstone/sink"
	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The broker over the epoll engine with private fd tables, whatever
// engine the suite runs: connections spread over four loops, each with
// its own descriptor table, deliver to one another (a post from one
// loop's thread to another's eventfd), and a takeover kills a connection
// from the CONNECT goroutine of another; both end cleanly at shutdown.
func TestEpollSharded_DeliverAndTakeOverAcrossLoops(t *testing.T) {
	b, addr := startBroker(t, Config{Engine: EngineEpoll, Epoll: engine.EpollConfig{PrivateFDs: true, Loops: 4}})
	const n = 12
	subs := make([]*v3, n)
	for i := range subs {
		subs[i] = connectV3(t, addr, fmt.Sprintf("sub%d", i), true)
		subs[i].sub(t, "fan/#", 1)
	}
	pub := connectV3(t, addr, "pub", true)
	pub.pub(t, "fan/out", 1, false, "to all")
	for i, s := range subs {
		m := next(t, s.msgs)
		assert.Equal(t, "to all", m.payload, "subscriber %d", i)
	}

	first := connectV5(t, addr, "same", paho.Connect{CleanStart: true})
	second := connectV5(t, addr, "same", paho.Connect{CleanStart: false})
	d := <-first.server
	assert.Equal(t, byte(mqtt.SessionTakenOver), d.ReasonCode)
	second.sub(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "self", QoS: 1}}})
	second.pub(t, &paho.Publish{Topic: "self", QoS: 1, Payload: []byte("mine")})
	assert.Equal(t, "mine", next(t, second.msgs).payload)
	assert.Equal(t, uint64(1), counter(b, "disconnect_session_taken_over"))
}

// nopSink is a Sink that takes nothing.
type nopSink struct{}

func (nopSink) Match(string) bool        { return false }
func (nopSink) Submit(sink.Record) error { return nil }

// Private fd tables and a sink are refused together, whether the tables
// are asked for or a connection cap above RLIMIT_NOFILE engages them.
func TestEpollSharded_RefusedWithSink(t *testing.T) {
	for name, cfg := range map[string]Config{
		"asked":    {Epoll: engine.EpollConfig{PrivateFDs: true}},
		"by a cap": {Admission: admission.Config{MaxConns: 1_000_000}},
	} {
		cfg.Engine, cfg.Sink = EngineEpoll, nopSink{}
		_, err := New(cfg)
		require.ErrorIs(t, err, ErrBadConfig, name)
		require.ErrorIs(t, err, errShardedSink, name)
		cfg.Sink = nil
		_, err = New(cfg)
		require.NoError(t, err, name)
	}
}
