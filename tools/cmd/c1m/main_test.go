//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"floodgate/tools/internal/limits"
	"floodgate/tools/internal/load"
)

func TestMain(m *testing.M) {
	if os.Getenv(fakeBrokerEnv) == "1" {
		os.Exit(fakeBroker(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// fakeBrokerEnv makes the test binary a stand-in broker (see fakeBroker in
// e2e_test.go; without the solution tag it exits at once).
const fakeBrokerEnv = "C1M_TEST_FAKE_BROKER"

func defaults() options {
	return options{conns: 1_000_000, pairs: 500, rate: 20_000, hold: time.Minute, window: 2000,
		sources: "127.0.1.0/24", keepalive: 300, rampTimeout: 4 * time.Minute, timeout: 10 * time.Minute,
		sweep: true, apply: true, engine: "epoll", root: "/", rlimit: 20_000}
}

func TestMakePlan_MillionHere(t *testing.T) {
	p, err := makePlan(defaults())
	require.NoError(t, err)
	// 17,640 sockets per table at most (90% of 20,000 − 400): 57 loops.
	assert.Equal(t, 57, p.loops)
	assert.Equal(t, 101, p.srcs, "one source address per 10,000 clients")
	assert.EqualValues(t, 1_000_000, p.need.Conns)
	assert.EqualValues(t, 101, p.need.SourceAddrs)
	assert.EqualValues(t, 17_536+125, p.need.FilesPerTable, "subscribers over 57 loops, publishers over 4")
	assert.Equal(t, load.HoldLoad, p.cfg.Scenario)
	assert.True(t, p.cfg.PrivateFDs)
	assert.True(t, p.cfg.Sweep)
	assert.EqualValues(t, 300, p.cfg.KeepAlive)

	o := defaults()
	o.conns, o.rlimit = 15_000, 20_000
	p, err = makePlan(o)
	require.NoError(t, err)
	assert.Equal(t, 2, p.loops, "at least 2")
	assert.Equal(t, 4, p.srcs, "at least 4")
}

func TestMakePlan_RefusesBadFlags(t *testing.T) {
	for name, mod := range map[string]func(*options){
		"too many":       func(o *options) { o.conns = 1_000_001 },
		"too few":        func(o *options) { o.conns = 5 },
		"pairs":          func(o *options) { o.conns, o.pairs = 100, 51 },
		"rate":           func(o *options) { o.rate = 0 },
		"hold":           func(o *options) { o.hold = 10 * time.Minute },
		"window":         func(o *options) { o.window = 5000 },
		"keepalive":      func(o *options) { o.keepalive = 60 },
		"timeout":        func(o *options) { o.timeout = time.Hour },
		"ramp > timeout": func(o *options) { o.rampTimeout = o.timeout },
		"engine":         func(o *options) { o.engine = "kqueue" },
		"rlimit":         func(o *options) { o.rlimit = 1024 },
		"loops":          func(o *options) { o.loops = 300 },
		"bin and rev":    func(o *options) { o.brokerBin, o.brokerRev = "/bin/true", "HEAD" },
		"sources":        func(o *options) { o.sources = "10.0.0.0/8" },
		"source count":   func(o *options) { o.sources = "127.0.1.0/30" },
	} {
		o := defaults()
		mod(&o)
		_, err := makePlan(o)
		assert.Error(t, err, name)
	}
}

// fakeProc writes a /proc tree: this kind of machine, with memAvailKB of
// memory available and file-max as given.
func fakeProc(t *testing.T, memAvailKB int64, fileMax string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"proc/meminfo":                              "MemTotal:       24684084 kB\nMemAvailable:   " + itoa(memAvailKB) + " kB\nSlab: 1 kB\nSUnreclaim: 1 kB\n",
		"proc/self/limits":                          "Max open files            20000                20000                files     \n",
		"proc/sys/fs/file-max":                      fileMax + "\n",
		"proc/loadavg":                              "0.50 0.40 0.30 1/100 12345\n",
		"proc/sys/fs/file-nr":                       "1324\t0\t" + fileMax + "\n",
		"proc/sys/fs/nr_open":                       "1048576\n",
		"proc/sys/net/ipv4/ip_local_port_range":     "32768\t60999\n",
		"proc/sys/net/netfilter/nf_conntrack_max":   "262144\n",
		"proc/sys/net/netfilter/nf_conntrack_count": "0\n",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	return root
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func TestRun_RefusesWhenMemoryIsShort(t *testing.T) {
	o := defaults()
	o.root = fakeProc(t, 8<<20, "2466170") // 8 GiB available
	o.out = t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(o, []string{"c1m"}, &stdout, &stderr)
	assert.Equal(t, exitRefused, code)
	msg := stderr.String()
	assert.Contains(t, msg, "c1m: refusing: limits: the run does not fit on this machine: 1,000,000 connections:")
	assert.Contains(t, msg, "MemAvailable: have 8.0 GiB, need 16.5 GiB")
	assert.Contains(t, msg, "about 451,260 connections fit")
	assert.Contains(t, stdout.String(), "MemAvailable", "the checks are shown first")
	assert.NotContains(t, stdout.String(), "starting the broker")
	entries, err := os.ReadDir(o.out)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing applied, built or written")
}

func TestRun_CheckOnlyStartsNothing(t *testing.T) {
	o := defaults()
	o.root = fakeProc(t, 23<<20, "2466170")
	o.out = t.TempDir()
	o.checkOnly = true
	var stdout, stderr bytes.Buffer
	assert.Equal(t, exitHeld, run(o, []string{"c1m"}, &stdout, &stderr), stderr.String())
	assert.Contains(t, stdout.String(), "c1m: plan: 1,000,000 clients (500 publishers) over 57 event loops with private fd tables (at most 17,661 sockets each) and 101 source addresses; broker -engine epoll -max-conns 1000000; 1 sysctl raise(s)")
	assert.Contains(t, stdout.String(), "it fits")
	assert.NotContains(t, stdout.String(), "starting the broker")
	assert.Equal(t, "262144", sysctlAt(t, o.root, "net/netfilter/nf_conntrack_max"), "nothing applied")
}

func TestRun_RefusesShortFilesWithoutRoot(t *testing.T) {
	o := defaults()
	o.root = fakeProc(t, 23<<20, "1500000")
	o.apply = false
	o.out = t.TempDir()
	var stdout, stderr bytes.Buffer
	assert.Equal(t, exitRefused, run(o, []string{"c1m"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "fs.file-max (free files, system wide): have 1,498,676 free")
	assert.Contains(t, stderr.String(), "(root could raise it: run as root)")
}

// As root, the short sysctls are raised before the broker starts, and
// restored when it fails to start, as on every other way out.
func TestDriver_RestoresSysctlsWhenTheBrokerFails(t *testing.T) {
	o := defaults()
	o.root = fakeProc(t, 23<<20, "1500000")
	p, err := makePlan(o)
	require.NoError(t, err)
	var out bytes.Buffer
	var sawRaised []string
	d := &driver{p: p, out: t.TempDir(), stdout: &out, euid: 0,
		startBroker: func(context.Context, *driver) (*broker, []string, error) {
			sawRaised = append(sawRaised, sysctlAt(t, o.root, "fs/file-max"), sysctlAt(t, o.root, "net/netfilter/nf_conntrack_max"))
			return nil, []string{"floodgate"}, errors.New("no broker today")
		}}
	rep, err := d.run(context.Background())
	require.ErrorContains(t, err, "no broker today")
	require.NotNil(t, rep)
	assert.Equal(t, []string{"2066860", "1065536"}, sawRaised, "raised while the broker runs: in use + 2M + 65,536; 1M + 65,536")
	assert.Equal(t, "1500000", sysctlAt(t, o.root, "fs/file-max"), "restored")
	assert.Equal(t, "262144", sysctlAt(t, o.root, "net/netfilter/nf_conntrack_max"), "restored")
	require.Len(t, rep.Applied, 2)
	require.Len(t, rep.Restored, 2)
	assert.FileExists(t, filepath.Join(d.out, "sysctl-restore.json"))
	assert.Contains(t, out.String(), "raised fs.file-max 1500000 -> 2066860")
	assert.Contains(t, out.String(), "restored fs.file-max = 1500000")
	assert.Equal(t, "0.50 0.40 0.30", rep.Machine.LoadAvgStart)

	// Not root: nothing is raised, and a short fs.file-max refuses.
	d2 := &driver{p: p, out: t.TempDir(), stdout: &out, euid: 1000}
	_, err = d2.run(context.Background())
	assert.ErrorIs(t, err, limits.ErrWontFit)
	assert.Equal(t, "1500000", sysctlAt(t, o.root, "fs/file-max"))
}

func sysctlAt(t *testing.T, root, key string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "proc/sys", key))
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

func TestVerdict(t *testing.T) {
	all := &load.Census{Held: 1000, Subscribers: 990, Publishers: 10, Established: 1000, SweepTargets: 990, SweepSent: 990, Swept: 990}
	m := map[string]float64{"connections_current": 1000, "subscriptions": 1000}
	ok, v := verdict(1000, all, m, 1000)
	assert.True(t, ok)
	assert.Equal(t, []string{"all 1,000 clients connected and subscribed at the end of the hold"}, v)

	dropped := *all
	dropped.Held, dropped.Subscribers, dropped.Established, dropped.Lost, dropped.Swept = 997, 987, 996, 3, 985
	ok, v = verdict(1000, &dropped, map[string]float64{"connections_current": 997, "subscriptions": 997}, 1000)
	assert.False(t, ok)
	assert.Equal(t, []string{
		"997 clients held at the end, 1,000 wanted",
		"1 held sockets are not in TCP state ESTABLISHED",
		"the broker closed 3 ready clients",
		"the sweep reached 985 of 990 idle subscribers",
		"the broker counts 997 open connections, 1,000 wanted",
		"the broker holds 997 subscriptions, 1,000 wanted",
	}, v)

	ok, v = verdict(1000, all, nil, 990)
	assert.False(t, ok)
	assert.Contains(t, v, "990 of 1,000 clients became ready (connected and subscribed)")
	assert.Contains(t, v, "the broker's metrics could not be read")
	ok, _ = verdict(1000, nil, m, 1000)
	assert.False(t, ok)
}

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(`# HELP floodgate_connections_current Open client connections.
# TYPE floodgate_connections_current gauge
floodgate_connections_current 1e+06
floodgate_connections_closed_total{reason="eof"} 3
floodgate_connections_closed_total{reason="keepalive timeout"} 2
floodgate_subscriptions 1.000001e+06
go_goroutines 12
`))
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"connections_current": 1e6, "connections_closed_total": 5, "subscriptions": 1000001}, m)
	_, err = parseMetrics(strings.NewReader("floodgate_x{a=\"b\"} nope\n"))
	assert.Error(t, err)
}

func TestSharded(t *testing.T) {
	// The line capstone/engine logs (8c8bd75).
	assert.True(t, sharded(`time=2026-11-25T11:37:22.105Z level=INFO msg="epoll engine: sharded: 4 loops with private fd tables, up to 19,918 connections each (RLIMIT_NOFILE 20000)" loops=4 private_fds=true per_loop=19918 cap=79672 rlimit_nofile=20000`))
	assert.False(t, sharded(`level=INFO msg="epoll engine: 2 loops sharing one fd table, up to 19,922 connections (RLIMIT_NOFILE 20000)" loops=2 private_fds=false`))
}

func TestReport_WritesJSONSummaryAndChart(t *testing.T) {
	r := &Report{Date: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Command: "make c1m", Conns: 1000, Pairs: 10,
		Rate: 20000, HoldS: 60, Loops: 2, SourceCount: 4, KeepAlive: 300, BrokerArgv: []string{"/tmp/x/floodgate", "-engine", "epoll"}, BrokerSource: "commit abc1234",
		BrokerMetrics: map[string]float64{"connections_current": 1000, "subscriptions": 1000}, ConntrackPeak: 0,
		Load: &load.Result{Ready: 1000, Sent: 100, Received: 100, BrokerRSSBefore: 10 << 20,
			Latency: &load.Percentiles{P50US: 200, P99US: 900, P999US: 2500, MaxUS: 4000},
			Census:  &load.Census{Held: 1000, Subscribers: 990, Publishers: 10, Established: 1000, SweepTargets: 990, SweepSent: 990, Swept: 990},
			Marks: []load.Mark{{Name: "start", T: 1, Slab: 100 << 20, SUnreclaim: 50 << 20, BrokerRSS: 10 << 20},
				{Name: "ramped", T: 3, Ready: 1000, Slab: 110 << 20, SUnreclaim: 56 << 20, BrokerRSS: 14 << 20},
				{Name: "census", T: 70, Ready: 1000, BrokerRSS: 14 << 20}},
			Timeline: []load.Sample{{T: 1, Ready: 0, BrokerRSS: 10 << 20, Slab: 100 << 20}, {T: 2, Ready: 600, BrokerRSS: 12 << 20, Slab: 106 << 20},
				{T: 3, Ready: 1000, BrokerRSS: 14 << 20, Slab: 110 << 20}}}}
	r.figures()
	assert.True(t, r.AllHeld)
	assert.InDelta(t, 2.0, r.RampSeconds, 1e-9)
	assert.InDelta(t, 500, r.ConnectRate, 1e-9)
	assert.InDelta(t, float64(4<<20)/1000, r.BrokerBytesPerConn, 1e-9)
	assert.InDelta(t, float64(10<<20)/1000, r.SlabPerConn, 1e-9)
	assert.InDelta(t, float64(6<<20)/1000, r.SUnreclaimPerConn, 1e-9)

	dir := t.TempDir()
	require.NoError(t, r.Write(dir))
	md, err := os.ReadFile(filepath.Join(dir, "summary.md"))
	require.NoError(t, err)
	for _, want := range []string{
		"**Result: all 1,000 clients connected and subscribed at the end of the hold.**",
		"| ramp (connect + subscribe) | 2.0 s (500/s) |",
		"| broker RSS per connection: end of hold; just ramped (idle) | 4,194 B; 4,194 B |",
		"| kernel slab over the ramp (Slab; SUnreclaim) | 10,486; 6,291 B per connection (100 MiB → 110 MiB machine-wide) |",
		"| latency p50 / p99 / p99.9 / max | 200 µs / 900 µs / 2.50 ms / 4.00 ms |",
		"| sweep (one message to every idle subscriber) | 990 of 990 received |",
		"| broker | `floodgate -engine epoll` (commit abc1234) |",
		"| nf_conntrack_count peak | 0 (loopback is not tracked) |",
	} {
		assert.Contains(t, string(md), want)
	}
	png, err := os.ReadFile(filepath.Join(dir, "chart.png"))
	require.NoError(t, err)
	assert.Equal(t, "\x89PNG", string(png[:4]))
	assert.FileExists(t, filepath.Join(dir, "result.json"))

	require.NoError(t, os.Remove(filepath.Join(dir, "summary.md")))
	require.NoError(t, redrawReport(dir))
	again, err := os.ReadFile(filepath.Join(dir, "summary.md"))
	require.NoError(t, err)
	assert.Equal(t, string(md), string(again), "the summary is a function of result.json")
	assert.Error(t, redrawReport(t.TempDir()))
}
