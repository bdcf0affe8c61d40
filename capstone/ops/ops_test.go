package ops_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"floodgate/capstone/ops"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// busy sets known figures on m.
func busy(m *ops.Metrics) {
	m.ConnectionsCurrent.Set(1234)
	m.ConnectionsAccepted.Add(1300)
	m.ConnectionsRefused.WithLabelValues(ops.RefuseCap).Add(3)
	m.ConnectionsRefused.WithLabelValues(ops.RefuseAuth).Add(5)
	m.MessagesIn.WithLabelValues(ops.QoSLabel(1)).Add(500)
	m.MessagesIn.WithLabelValues(ops.QoSLabel(0)).Add(100)
	m.MessagesOut.WithLabelValues(ops.QoSLabel(1)).Add(900)
	m.BytesIn.Add(64000)
	m.Drops.WithLabelValues(ops.DropSlowConsumer).Add(7)
	m.Drops.WithLabelValues(ops.DropSinkFull).Add(2)
	m.LimiterRejections.WithLabelValues(ops.LimitPublish).Add(11)
	m.Sessions.Set(1250)
	m.Subscriptions.Set(4000)
	m.Retained.Set(17)
	m.QueueDepth.Set(42)
	m.QueueDepthObserved.Observe(3)
	m.SinkQueueDepth.Set(5)
	m.SinkSpillDepth.Set(99)
	m.SetBreakerState("sink", ops.BreakerOpen)
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func newTestServer(t *testing.T, cfg ops.ServerConfig) (*ops.Server, *httptest.Server, *http.Client) {
	t.Helper()
	s, err := ops.NewServer(cfg)
	require.NoError(t, err)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	c := hs.Client()
	c.Timeout = 5 * time.Second
	return s, hs, c
}

func TestMetricsEndpoint(t *testing.T) {
	m := ops.NewMetrics()
	busy(m)
	_, hs, c := newTestServer(t, ops.ServerConfig{Metrics: m})
	code, body := get(t, c, hs.URL+"/metrics")
	require.Equal(t, http.StatusOK, code)
	for _, want := range []string{
		"floodgate_connections_current 1234",
		`floodgate_connections_refused_total{reason="auth"} 5`,
		`floodgate_messages_in_total{qos="1"} 500`,
		`floodgate_drops_total{reason="slow_consumer"} 7`,
		`floodgate_limiter_rejections_total{kind="publish"} 11`,
		`floodgate_breaker_state{breaker="sink"} 2`,
		"floodgate_sink_spill_depth 99",
		"floodgate_queue_depth_messages 42",
		"floodgate_queue_depth_bucket",
		"floodgate_memory_bytes_per_connection",
		"go_goroutines",
		"process_open_fds",
	} {
		assert.Contains(t, body, want)
	}
	// Two Metrics do not share a registry.
	other := ops.NewMetrics()
	other.ConnectionsCurrent.Set(1)
	assert.Equal(t, 1234.0, m.Snapshot(ops.Snapshot{}).Connections)
}

func TestHealthzDuringShutdown(t *testing.T) {
	s, hs, c := newTestServer(t, ops.ServerConfig{})
	code, body := get(t, c, hs.URL+"/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)
	s.Shutdown()
	s.Shutdown() // idempotent
	code, body = get(t, c, hs.URL+"/healthz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "shutting down\n", body)
}

func TestPprofOnlyWhenEnabledAndOnLoopback(t *testing.T) {
	_, hs, c := newTestServer(t, ops.ServerConfig{})
	code, _ := get(t, c, hs.URL+"/debug/pprof/")
	assert.Equal(t, http.StatusNotFound, code, "off by default")

	_, hs, c = newTestServer(t, ops.ServerConfig{Pprof: true, Addr: "127.0.0.1:0"})
	code, body := get(t, c, hs.URL+"/debug/pprof/")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "goroutine")

	for _, addr := range []string{":8080", "0.0.0.0:8080", "192.0.2.1:8080", "[::]:8080", "example.com:8080"} {
		_, err := ops.NewServer(ops.ServerConfig{Pprof: true, Addr: addr})
		require.ErrorIs(t, err, ops.ErrPprofNotLoopback, addr)
		assert.Contains(t, err.Error(), addr)
	}
	for _, addr := range []string{"127.0.0.1:8080", "[::1]:8080", "localhost:8080", "127.1.2.3:0"} {
		_, err := ops.NewServer(ops.ServerConfig{Pprof: true, Addr: addr})
		require.NoError(t, err, addr)
	}
	_, err := ops.NewServer(ops.ServerConfig{Addr: "no-port"})
	require.ErrorIs(t, err, ops.ErrInvalidConfig)
}

func TestServeRefusesPprofOnNonLoopbackListener(t *testing.T) {
	s, err := ops.NewServer(ops.ServerConfig{Pprof: true})
	require.NoError(t, err)
	ln := fakeListener{addr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 8080}}
	err = s.Serve(context.Background(), ln)
	require.ErrorIs(t, err, ops.ErrPprofNotLoopback)
}

type fakeListener struct{ addr net.Addr }

func (fakeListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (fakeListener) Close() error              { return nil }
func (l fakeListener) Addr() net.Addr          { return l.addr }

func TestStatusPageAndJSON(t *testing.T) {
	m := ops.NewMetrics()
	busy(m)
	_, hs, c := newTestServer(t, ops.ServerConfig{Metrics: m})
	code, body := get(t, c, hs.URL+"/status")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `<script src="/static/app.js">`)
	code, body = get(t, c, hs.URL+"/static/app.js")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `new EventSource("/status/events"`)

	code, body = get(t, c, hs.URL+"/status.json")
	require.Equal(t, http.StatusOK, code)
	var s ops.Snapshot
	require.NoError(t, json.Unmarshal([]byte(body), &s))
	assert.Equal(t, 1234.0, s.Connections)
	assert.Equal(t, 600.0, s.MessagesIn)
	assert.Equal(t, []ops.Count{{Label: "slow_consumer", Value: 7}, {Label: "sink_full", Value: 2}}, s.Drops)
	assert.Equal(t, []ops.BreakerStatus{{Name: "sink", State: "open"}}, s.Breakers)
	assert.Equal(t, 42.0, s.QueueDepth)
	assert.Equal(t, 99.0, s.SinkSpillDepth)
	assert.Greater(t, s.BytesPerConnection, 0.0)
	assert.Greater(t, s.Goroutines, 0)
}

func TestSnapshotRates(t *testing.T) {
	m := ops.NewMetrics()
	first := m.Snapshot(ops.Snapshot{})
	assert.Zero(t, first.InPerSec, "no rate without a previous snapshot")
	m.MessagesIn.WithLabelValues("0").Add(300)
	m.BytesOut.Add(1000)
	prev := first
	prev.Time = time.Now().Add(-2 * time.Second) // as if taken two seconds ago
	s := m.Snapshot(prev)
	assert.InDelta(t, 150, s.InPerSec, 2)
	assert.InDelta(t, 500, s.BytesOutPerSec, 5)
}

// TestEventsStream reads the first server-sent event, then checks that a
// shutdown ends the stream.
func TestEventsStream(t *testing.T) {
	m := ops.NewMetrics()
	busy(m)
	s, hs, c := newTestServer(t, ops.ServerConfig{Metrics: m, Interval: time.Hour})
	resp, err := c.Get(hs.URL + "/status/events")
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	r := bufio.NewReader(resp.Body)
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "event: snapshot\n", line)
	line, err = r.ReadString('\n')
	require.NoError(t, err)
	data, ok := strings.CutPrefix(line, "data: ")
	require.True(t, ok, line)
	var snap ops.Snapshot
	require.NoError(t, json.Unmarshal([]byte(data), &snap))
	assert.Equal(t, 1234.0, snap.Connections)

	s.Shutdown()
	_, err = io.ReadAll(r) // the stream ends: EOF, not the 1h interval
	require.NoError(t, err)
}

// TestRunServesAndShutsDown runs the real listener on 127.0.0.1:0.
func TestRunServesAndShutsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s, err := ops.NewServer(ops.ServerConfig{Pprof: true})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	c := &http.Client{Timeout: 5 * time.Second}
	code, _ := get(t, c, "http://"+ln.Addr().String()+"/healthz")
	assert.Equal(t, http.StatusOK, code)
	code, _ = get(t, c, "http://"+ln.Addr().String()+"/debug/pprof/cmdline")
	assert.Equal(t, http.StatusOK, code)
	cancel()
	require.NoError(t, <-done)
	c.CloseIdleConnections()
}
