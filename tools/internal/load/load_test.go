package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseTarget_AcceptsOnlyLoopback(t *testing.T) {
	for _, s := range []string{"127.0.0.1:1883", "127.9.8.7:1", "localhost:1883", "127.255.255.254:65535"} {
		_, err := ParseTarget(s)
		assert.NoError(t, err, s)
	}
	for _, s := range []string{"10.0.0.1:1883", "0.0.0.0:1883", "192.168.1.10:1883", "8.8.8.8:53",
		"[::1]:1883", "[::ffff:10.0.0.1]:1883", "example.com:1883", "128.0.0.1:1883"} {
		_, err := ParseTarget(s)
		assert.ErrorIs(t, err, ErrNotLoopback, s)
	}
	for _, s := range []string{"127.0.0.1:0", "127.0.0.1", "127.0.0.1:99999", ""} {
		_, err := ParseTarget(s)
		assert.Error(t, err, s)
	}
}

func TestSources_SpreadsOverLoopbackOnly(t *testing.T) {
	got, err := Sources("127.0.1.0/24", 3)
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, "127.0.1.1", got[0].String())
	assert.Equal(t, "127.0.1.3", got[2].String())

	// 127.0.0.1 and .0/.255 are skipped.
	got, err = Sources("127.0.0.0/23", 300)
	require.NoError(t, err)
	for _, a := range got {
		b := a.As4()
		assert.NotContains(t, []byte{0, 255}, b[3], a.String())
		assert.NotEqual(t, "127.0.0.1", a.String())
	}

	for _, p := range []string{"10.0.0.0/24", "0.0.0.0/0", "126.0.0.0/7", "::1/128", "192.168.0.0/16"} {
		_, err := Sources(p, 1)
		assert.ErrorIs(t, err, ErrNotLoopback, p)
	}
	_, err = Sources("127.0.1.0/30", 10)
	assert.Error(t, err, "a /30 holds fewer than 10 usable addresses")
	_, err = Sources("127.0.0.0/8", MaxSources+1)
	assert.Error(t, err)
}

func TestRun_RefusesAddressesOutsideLoopback(t *testing.T) {
	_, err := Run(context.Background(), Config{Target: "192.168.1.1:1883"})
	assert.ErrorIs(t, err, ErrNotLoopback)
	_, err = Run(context.Background(), Config{Target: "127.0.0.1:1883", Sources: "10.1.0.0/16"})
	assert.ErrorIs(t, err, ErrNotLoopback)
}

func TestConfig_Bounds(t *testing.T) {
	c, err := Config{}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, Idle, c.Scenario)
	assert.Equal(t, "127.0.0.1:1883", c.Target)
	assert.Equal(t, 1000, c.Conns)
	assert.Positive(t, c.bound())
	assert.LessOrEqual(t, c.bound(), 2*MaxRampTimeout+2*MaxDuration+time.Minute)

	bad := []Config{
		{Scenario: "flood"},
		{Conns: MaxConns + 1},
		{Conns: -1},
		{Scenario: Latency, Conns: MaxConns/2 + 1},
		{Duration: MaxDuration + time.Second},
		{Hold: MaxDuration + time.Second},
		{Rate: MaxRate + 1},
		{Messages: MaxMessages + 1},
		{Payload: MinPayload - 1},
		{Payload: MaxPayload + 1},
		{Window: MaxWindow + 1},
		{Loops: MaxLoops + 1},
		{Protocol: 3},
		{RampTimeout: MaxRampTimeout + time.Second},
	}
	for _, c := range bad {
		_, err := c.withDefaults()
		assert.Error(t, err, "%+v", c)
		_, err = Run(context.Background(), c)
		assert.Error(t, err, "%+v", c)
	}
}

func TestConfig_MaxPerLoop(t *testing.T) {
	assert.Equal(t, 500, Config{Scenario: Idle, Conns: 1000, Loops: 2}.maxPerLoop())
	assert.Equal(t, 334, Config{Scenario: Idle, Conns: 1000, Loops: 3}.maxPerLoop())
	assert.Equal(t, 100, Config{Scenario: Latency, Conns: 100, Loops: 2}.maxPerLoop())
	// FanIn: the subscriber has loop 0 to itself.
	assert.Equal(t, 1000, Config{Scenario: FanIn, Conns: 1000, Loops: 2}.maxPerLoop())
	assert.Equal(t, 500, Config{Scenario: FanIn, Conns: 1000, Loops: 3}.maxPerLoop())
	assert.Equal(t, 1001, Config{Scenario: FanIn, Conns: 1000, Loops: 1}.maxPerLoop())
}

func TestRun_RefusesMoreSocketsThanTheFDLimit(t *testing.T) {
	lim, err := fdLimit()
	if err != nil || lim >= MaxConns {
		t.Skipf("RLIMIT_NOFILE is %d: cannot provoke the check", lim)
	}
	_, err = Run(context.Background(), Config{Conns: int(lim)})
	assert.ErrorIs(t, err, ErrTooManyFiles)
	_, err = Run(context.Background(), Config{Conns: int(lim), Loops: 1, PrivateFDs: true})
	assert.ErrorIs(t, err, ErrTooManyFiles, "one loop's table holds them all")
}

func TestHistogram_Quantiles(t *testing.T) {
	var h Histogram
	assert.Zero(t, h.Quantile(0.99))
	assert.Nil(t, h.Summary())
	for i := 1; i <= 10_000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	var o Histogram
	o.Record(-time.Second) // counts as 0
	h.Merge(&o)
	assert.EqualValues(t, 10_001, h.Count())
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {0.999, 9990 * time.Microsecond}, {1, 10 * time.Millisecond}} {
		got := h.Quantile(c.q)
		assert.InEpsilon(t, float64(c.want), float64(got), 0.01, "q=%v got %v", c.q, got)
	}
	s := h.Summary()
	assert.InEpsilon(t, 10_000, s.MaxUS, 0.001)
	assert.InEpsilon(t, 5_000, s.MeanUS, 0.01)
	for v := uint64(0); v < 1<<20; v = v*3/2 + 1 {
		mid := bucketMid(bucketOf(v))
		assert.Equal(t, bucketOf(v), bucketOf(mid), "v=%d", v)
	}
}

func TestResult_WritesJSONMarkdownAndChart(t *testing.T) {
	r := &Result{Scenario: FanIn, Broker: "test", Target: "127.0.0.1:1", Sent: 10, Received: 9, Expected: 10,
		Ready: 3, Latency: &Percentiles{Count: 9, P50US: 100, P99US: 2500},
		Timeline:  []Sample{{T: 0.25, Ready: 3, RxPerSec: 10, BrokerRSS: 5 << 20}, {T: 0.5, Ready: 3, RxPerSec: 26, BrokerRSS: 6 << 20}},
		BrokerPID: 1, BrokerRSSBefore: 4 << 20, LatencyCurve: []QuantilePoint{{0.5, 100}, {0.99, 2500}, {1, 3000}},
		Errors: map[string]int{"read: EOF": 2}}
	dir := filepath.Join(t.TempDir(), "out")
	require.NoError(t, r.Write(dir))
	var back Result
	b, err := os.ReadFile(filepath.Join(dir, "result.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, r.Received, back.Received)
	md, err := os.ReadFile(filepath.Join(dir, "result.md"))
	require.NoError(t, err)
	assert.Contains(t, string(md), "| delivered / expected | 9 / 10 (loss 10.00%) |")
	assert.Contains(t, string(md), "2.50 ms")
	png, err := os.ReadFile(filepath.Join(dir, "chart.png"))
	require.NoError(t, err)
	assert.Equal(t, "\x89PNG", string(png[:4]))
	svg := filepath.Join(dir, "chart.svg")
	require.NoError(t, r.Chart(svg))
	b, err = os.ReadFile(svg)
	require.NoError(t, err)
	assert.Contains(t, string(b), "<svg")
	assert.Contains(t, string(b), "p99")
	assert.InDelta(t, 0.1, r.Loss(), 1e-9)
}

func TestReadRSS(t *testing.T) {
	rss, err := ReadRSS(os.Getpid())
	require.NoError(t, err)
	assert.Greater(t, rss, int64(1<<20))
	_, err = ReadRSS(1 << 30)
	assert.Error(t, err)
}

func TestRun_ConnectRefusedIsReported(t *testing.T) {
	// Port 1 on loopback: nothing listens there, so every connect is refused.
	res, err := Run(context.Background(), Config{Target: "127.0.0.1:1", Conns: 5, RampTimeout: 5 * time.Second})
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrRamp), "%v", err)
	require.NotNil(t, res)
	assert.EqualValues(t, 5, res.Failed)
	assert.Zero(t, res.Ready)
	assert.NotEmpty(t, res.Errors)
}

func TestParseSlab(t *testing.T) {
	slab, un, err := parseSlab("MemTotal: 1 kB\nSlab:             533136 kB\nSReclaimable:     480480 kB\nSUnreclaim:        52656 kB\n")
	require.NoError(t, err)
	assert.EqualValues(t, 533136<<10, slab)
	assert.EqualValues(t, 52656<<10, un)
	for _, bad := range []string{"", "Slab: 1 kB\n", "Slab: x kB\nSUnreclaim: 1 kB\n", "Slab:\nSUnreclaim: 1 kB\n"} {
		_, _, err := parseSlab(bad)
		assert.Error(t, err, "%q", bad)
	}
	s, _, err := ReadSlab()
	require.NoError(t, err)
	assert.Positive(t, s)
}

func TestConfig_HoldLoad(t *testing.T) {
	c, err := Config{Scenario: HoldLoad, Conns: 1_000_000, Loops: 56}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, 500, c.Pairs)
	assert.Equal(t, 20_000.0, c.Rate)
	assert.Equal(t, 4, c.pubLoops())
	// 999,500 subscribers over 56 loops, 500 publishers over the first 4.
	assert.Equal(t, 17_849+125, c.maxPerLoop())
	for _, bad := range []Config{
		{Scenario: HoldLoad, Conns: 1},
		{Scenario: HoldLoad, Conns: 100, Pairs: 51},
		{Scenario: HoldLoad, Conns: 100_000, Pairs: MaxPairs + 1},
		{Scenario: HoldLoad, Sweep: true, SweepRate: -1},
	} {
		_, err := bad.withDefaults()
		assert.Error(t, err, "%+v", bad)
	}
	s := &shared{cfg: c, scenario: HoldLoad, prefix: "p"}
	assert.Equal(t, "p/holdload/0", s.topic(999_500), "publisher 0 sends to subscriber 0")
	assert.Equal(t, "p/holdload/1999", s.topic(999_501), "stride 999,500/500")
	assert.Equal(t, "p/pub/999500", s.filter(999_500))
	assert.Equal(t, 0, s.loopFor(999_500))
	assert.Equal(t, 3, s.loopFor(999_503))
	assert.Equal(t, 0, s.loopFor(999_504))
	assert.Equal(t, 55, s.loopFor(55))
}

// A Config, hooks and writers included, encodes as JSON: make bench
// records the Config of every case in bench.json.
func TestConfig_JSON(t *testing.T) {
	var buf bytes.Buffer
	c := Config{Scenario: HoldLoad, Conns: 3, BeforeClose: func() {}, Progress: &buf, Terminal: true}
	j, err := json.Marshal(c)
	require.NoError(t, err)
	assert.Contains(t, string(j), `"Conns":3`)
	assert.NotContains(t, string(j), "BeforeClose")
	assert.NotContains(t, string(j), "Progress")
}
