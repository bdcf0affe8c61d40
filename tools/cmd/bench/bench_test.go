package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"floodgate/tools/internal/load"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func fake(broker string, c string, run int, rssPerConn, throughput float64) record {
	return record{Broker: broker, Case: c, Run: run, Result: &load.Result{
		BrokerRSSAfter: 1, BrokerRSSPerConn: rssPerConn, Throughput: throughput}}
}

func TestSummary_MediansAndRatios(t *testing.T) {
	recs := []record{
		fake("a", "idle", 1, 1000, 0), fake("a", "idle", 2, 3000, 0), fake("a", "idle", 3, 1100, 0),
		fake("b", "idle", 1, 2200, 0), fake("b", "idle", 2, 2200, 0),
		fake("a", "fanin/500", 1, 0, 100), fake("b", "fanin/500", 1, 0, 250),
		{Broker: "b", Case: "fanin/500", Run: 2, Error: "boom"},
	}
	s := summarize(recs, []string{"a", "b"}, plan{scenarios: []load.Scenario{load.Idle, load.FanIn}}.cases())
	s.Runs = 3
	require.NotEmpty(t, s.Rows)
	assert.Equal(t, 1100.0, s.Rows[0].Cells["a"].Median, "median of 1000, 3000, 1100")
	assert.Equal(t, 2200.0, s.Rows[0].Cells["b"].Median)
	md := s.markdown()
	assert.Contains(t, md, "| metric | a | b | b / a |")
	assert.Contains(t, md, "| RSS per idle subscribed connection (lower is better) | 1,100 B | 2,200 B | 2.00× |")
	assert.Contains(t, md, "| QoS0 fan-in, 500 in flight, delivered (higher is better) | 100/s | 250/s | 2.50× |")
	assert.Contains(t, md, "failed: b fanin/500 run 2: boom")
	png := filepath.Join(t.TempDir(), "bench.png")
	require.NoError(t, s.chart(png))
	b, err := os.ReadFile(png)
	require.NoError(t, err)
	assert.Equal(t, "\x89PNG", string(b[:4]))
}

func TestMedian(t *testing.T) {
	assert.Equal(t, 2.0, median([]float64{3, 1, 2}))
	assert.Equal(t, 2.5, median([]float64{4, 1, 2, 3}))
	assert.Equal(t, "1,234,567", group(1234567))
	assert.Equal(t, "999", group(999))
}

func TestPlan_FanInRunsAtTwoWindows(t *testing.T) {
	cs := plan{scenarios: load.Scenarios}.cases()
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	assert.Equal(t, []string{"idle", "fanin/500", "fanin/4000", "fanout", "latency", "storm"}, names)
	assert.Equal(t, 4000, cs[2].Config.InFlight)
}

func TestPlan_EveryScenarioFitsTheLimits(t *testing.T) {
	for _, quick := range []bool{false, true} {
		p := plan{quick: quick}
		for _, s := range load.Scenarios {
			c := p.config(s)
			assert.Equal(t, s, c.Scenario)
			assert.LessOrEqual(t, c.Conns, 19_000, "a broker may open 20,000 files here")
			assert.LessOrEqual(t, c.Duration, load.MaxDuration)
		}
	}
}

func TestMosquitto_StartsOnLoopbackAndStops(t *testing.T) {
	k, err := prepareMosquitto(context.Background(), "", nil)
	if err != nil {
		t.Skip("mosquitto is not installed (apt-get install mosquitto):", err)
	}
	dir := t.TempDir()
	r, err := k.start(context.Background(), dir)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(r.addr, "127.0.0.1:"))
	conf, err := os.ReadFile(filepath.Join(dir, "mosquitto.conf"))
	require.NoError(t, err)
	assert.Contains(t, string(conf), "listener "+strings.TrimPrefix(r.addr, "127.0.0.1:")+" 127.0.0.1\n")
	assert.Contains(t, string(conf), "max_connections -1\n")
	assert.Contains(t, string(conf), "persistence false\n")
	_, err = load.ReadRSS(r.pid())
	require.NoError(t, err)
	require.NoError(t, r.stop())
	_, err = load.ReadRSS(r.pid())
	assert.Error(t, err, "the broker process is gone")
}

func TestFloodgate_BothEnginesFromOneBinary(t *testing.T) {
	for _, name := range []string{"floodgate-goroutine", "floodgate-epoll", "floodgate"} {
		require.Contains(t, brokerKinds, name)
	}
	assert.Equal(t, []string{"fg", "-tcp", "127.0.0.1:1883", "-ws", "off", "-ops", "off", "-log-level", "warn", "-engine", "epoll", "-x"},
		floodgateArgv("fg", "epoll", 1883, []string{"-x"}))
	assert.Equal(t, []string{"fg", "-tcp", "127.0.0.1:1883", "-ws", "off", "-ops", "off", "-log-level", "warn", "-engine", "goroutine"},
		floodgateArgv("fg", "goroutine", 1883, nil))
	assert.NotContains(t, floodgateArgv("fg", "", 1883, nil), "-engine", "plain floodgate keeps its default engine")

	// One build serves every engine: a binary already in bin is reused.
	bin := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bin, "floodgate"), []byte("#!/bin/sh\n"), 0o755))
	g, err := brokerKinds["floodgate-goroutine"].prepare(context.Background(), bin, nil)
	require.NoError(t, err)
	e, err := brokerKinds["floodgate-epoll"].prepare(context.Background(), bin, []string{"-max-queued", "10"})
	require.NoError(t, err)
	assert.Equal(t, "floodgate-goroutine", g.name)
	assert.Equal(t, "floodgate-epoll", e.name)
	ga, err := g.argv("", 1)
	require.NoError(t, err)
	ea, err := e.argv("", 1)
	require.NoError(t, err)
	assert.Equal(t, ga[0], ea[0])
	assert.Equal(t, []string{"-engine", "goroutine"}, ga[len(ga)-2:])
	assert.Equal(t, []string{"-engine", "epoll", "-max-queued", "10"}, ea[len(ea)-4:])
}

func TestSummary_FourBrokersRatioEachPeer(t *testing.T) {
	brokers := []string{"mosquitto", "mochi", "floodgate-goroutine", "floodgate-epoll"}
	var recs []record
	for i, b := range brokers {
		recs = append(recs, fake(b, "fanin/500", 1, 0, float64(100*(i+1))))
	}
	s := summarize(recs, brokers, plan{scenarios: []load.Scenario{load.FanIn}}.cases())
	md := s.markdown()
	assert.Contains(t, md, "| metric | mosquitto | mochi | floodgate-goroutine | floodgate-epoll | mochi / mosquitto | floodgate-goroutine / mosquitto | floodgate-goroutine / mochi | floodgate-epoll / mosquitto | floodgate-epoll / mochi | floodgate-epoll / floodgate-goroutine |")
	assert.Contains(t, md, "| 100/s | 200/s | 300/s | 400/s | 2.00× | 3.00× | 1.50× | 4.00× | 2.00× | 1.33× |")
	require.NoError(t, s.chart(filepath.Join(t.TempDir(), "bench.png")))
}
