//go:build floodgate.solution && linux

// These tests need the reference codec: run them with -tags floodgate.solution.

package load

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"floodgate/tools/internal/mochibroker"
)

// mochi starts an in-process mochi broker on 127.0.0.1:0 and returns its
// address.
func mochi(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv, err := mochibroker.Start(ln, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() {
		// mochi v2.7.9's Close can deadlock while clients are still being
		// deleted: Clients.GetByListener read-locks the map twice (via
		// Len), and a Delete that asks for the write lock in between
		// blocks both for good (mochi-mqtt/server#488, fix in PR #489, open).
		// So wait, at most 10 s, until the clients
		// the run closed are gone; mochi has no event for it to wait on.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		deadline := time.Now().Add(10 * time.Second)
		for srv.Clients.Len() > 0 && time.Now().Before(deadline) {
			<-tick.C
		}
		srv.Close()
	})
	return ln.Addr().String()
}

func run(t *testing.T, c Config) *Result {
	t.Helper()
	c.Target = mochi(t)
	c.BrokerPID = os.Getpid() // the broker runs in this process
	c.Broker = "mochi"
	c.Loops = 2
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, c)
	require.NoError(t, err)
	require.NotNil(t, res)
	assert.Zero(t, res.Failed)
	assert.Zero(t, res.Lost)
	assert.Empty(t, res.Errors)
	assert.NotEmpty(t, res.Timeline)
	return res
}

func TestScenario_IdleHoldsEveryConnectionAndReadsRSS(t *testing.T) {
	var progress bytes.Buffer
	res := run(t, Config{Scenario: Idle, Conns: 60, Hold: 300 * time.Millisecond, SourceCount: 7, Progress: &progress})
	assert.EqualValues(t, 60, res.Ready)
	require.Len(t, res.Ramps, 1)
	assert.Positive(t, res.ConnectRate)
	assert.Positive(t, res.BrokerRSSBefore)
	assert.Positive(t, res.BrokerRSSAfter)
	assert.Zero(t, res.Sent)
	assert.Contains(t, progress.String(), "ready ", "a plain progress line, at least the last")
	assert.NotContains(t, progress.String(), "\r", "no bar when Terminal is false")
}

func TestScenario_StormCountsConnectsPerSecond(t *testing.T) {
	res := run(t, Config{Scenario: Storm, Conns: 100, Window: 10})
	assert.EqualValues(t, 100, res.Ready)
	assert.InDelta(t, 100/res.RampSeconds, res.ConnectRate, 1e-6)
}

func TestScenario_FanInDeliversEveryMessage(t *testing.T) {
	res := run(t, Config{Scenario: FanIn, Conns: 20, Messages: 2000, Duration: 10 * time.Second, InFlight: 200})
	assert.EqualValues(t, 21, res.Ready)
	assert.EqualValues(t, 2000, res.Sent, "the message budget stops the publishers")
	assert.Equal(t, res.Sent, res.Expected)
	assert.Equal(t, res.Expected, res.Received)
	assert.Positive(t, res.Throughput)
	require.NotNil(t, res.Latency)
	assert.EqualValues(t, 2000, res.Latency.Count)
}

func TestScenario_FanOutDeliversToEverySubscriber(t *testing.T) {
	res := run(t, Config{Scenario: FanOut, Conns: 30, Rate: 200, Messages: 20, Duration: 5 * time.Second})
	assert.EqualValues(t, 31, res.Ready)
	assert.EqualValues(t, 20, res.Sent)
	assert.EqualValues(t, 20*30, res.Expected)
	assert.Equal(t, res.Expected, res.Received)
}

func TestScenario_LatencyAtAFixedRate(t *testing.T) {
	res := run(t, Config{Scenario: Latency, Conns: 10, Rate: 1000, Duration: 300 * time.Millisecond, Protocol: 5})
	assert.EqualValues(t, 20, res.Ready)
	// Pacing never runs ahead of the rate (1,000 msg/s).
	assert.Positive(t, res.Sent)
	assert.LessOrEqual(t, float64(res.Sent), 1000*res.PublishSeconds+5)
	assert.Equal(t, res.Sent, res.Received)
	require.NotNil(t, res.Latency)
	assert.Equal(t, uint64(res.Received), res.Latency.Count)
	assert.LessOrEqual(t, res.Latency.P50US, res.Latency.P99US)
	assert.LessOrEqual(t, res.Latency.P99US, res.Latency.P999US)
}

func TestScenario_PrivateFDTablesHoldTheSockets(t *testing.T) {
	res := run(t, Config{Scenario: Idle, Conns: 90, Hold: time.Millisecond, PrivateFDs: true})
	assert.EqualValues(t, 90, res.Ready)
	assert.True(t, res.Params.PrivateFDs)
}

func TestScenario_HoldLoadSweepsAndCountsEveryClient(t *testing.T) {
	var calledWith int64 = -1
	var res *Result
	c := Config{Scenario: HoldLoad, Conns: 203, Pairs: 3, Rate: 600, Duration: 300 * time.Millisecond,
		Sweep: true, SweepRate: 10_000, SweepWindow: 50, PrivateFDs: true}
	c.BeforeClose = func() { calledWith = 0 } // set before Run closes anything
	res = run(t, c)
	assert.Zero(t, calledWith, "BeforeClose was called")
	assert.EqualValues(t, 203, res.Ready)
	require.Len(t, res.Ramps, 2)
	assert.Equal(t, 200, res.Ramps[0].Conns)
	assert.Equal(t, 3, res.Ramps[1].Conns)
	// The background load reaches its subscribers.
	assert.Positive(t, res.Sent)
	assert.Equal(t, res.Sent, res.Received)
	require.NotNil(t, res.Latency)
	assert.Equal(t, uint64(res.Received), res.Latency.Count, "sweep messages are not latency samples")

	cs := res.Census
	require.NotNil(t, cs)
	assert.Equal(t, Census{Held: 203, Subscribers: 200, Publishers: 3, Established: 203,
		SweepTargets: 200, SweepSent: 200, Swept: 200}, *cs)
	var names []string
	for _, m := range res.Marks {
		names = append(names, m.Name)
		assert.Positive(t, m.Slab, m.Name)
		assert.Positive(t, m.BrokerRSS, m.Name)
	}
	assert.Equal(t, []string{"start", "ramped", "published", "swept", "census"}, names)
	assert.EqualValues(t, 203, res.MarkNamed("census").Ready)
	assert.Nil(t, res.MarkNamed("nope"))
	// The broker is this process: its RSS may shrink after a GC, so only
	// check that it was read.
	assert.Positive(t, res.BrokerRSSAfter)
	assert.NotZero(t, res.BrokerRSSPerConn)
}

// With a keepalive of 1 s, the broker closes a client that sends nothing
// for 1.5 s: idle subscribers survive a 2.5 s hold only if their spread
// PINGREQs go out.
func TestScenario_HoldLoadKeepsIdleClientsAliveWithPings(t *testing.T) {
	res := run(t, Config{Scenario: HoldLoad, Conns: 40, Pairs: 1, Rate: 10, Duration: 2500 * time.Millisecond, KeepAlive: 1})
	require.NotNil(t, res.Census)
	assert.EqualValues(t, 40, res.Census.Held)
	assert.EqualValues(t, 40, res.Census.Established)
}
