// Command bench is `make bench`: it runs the load generator's scenarios
// (tools/internal/load) against mosquitto, mochi-mqtt and Floodgate, one
// broker at a time, starting a fresh broker process for every run, and
// prints a side-by-side table of the medians with the ratio of each broker
// to each peer. Ratios carry across machines; absolute figures from two
// shared cores do not.
//
// Build it with the solution tag, as the load generator (its packets come
// from the chapter 3 codec, the reference only under the tag):
//
//	go run -tags floodgate.solution floodgate/tools/cmd/bench            # 3 runs each: about 7 minutes here
//	go run -tags floodgate.solution floodgate/tools/cmd/bench -quick     # 1 short run each: a smoke test
//
// The brokers:
//   - mosquitto: the Debian package's binary, with a generated config that
//     listens on 127.0.0.1:PORT with max_connections -1, no persistence,
//     anonymous access and set_tcp_nodelay true (the Go brokers' sockets
//     are TCP_NODELAY by default).
//   - mochi: tools/cmd/mochi (mochi-mqtt v2.7.9, default options).
//   - floodgate-goroutine and floodgate-epoll: capstone/cmd/floodgate built
//     with -tags floodgate.solution (what `make capstone` runs), once, and
//     run with -engine goroutine or -engine epoll; if it does not build,
//     both are reported absent. It serves MQTT over TCP only (-ws off -ops
//     off) and logs warnings and errors only (-log-level warn). The broker
//     name "floodgate" runs the same binary with its default engine.
//
// Brokers are built into a temporary directory first, so that the PID the
// load generator reads RSS from is the broker's own (not `go run`'s).
// bench stops only the processes it started, by PID (SIGTERM, then SIGKILL
// after 5 s), talks only to 127.0.0.0/8, and is bounded by -timeout. On
// Linux a broker dies with bench even when bench is SIGKILLed (a
// parent-death signal), so a killed run leaves no broker behind.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"floodgate/tools/internal/load"
)

func main() {
	quick := flag.Bool("quick", false, "one short run per broker and scenario (a smoke run)")
	runs := flag.Int("runs", 0, "runs per broker and scenario; the table shows medians (0: 3, 1 with -quick)")
	brokers := flag.String("brokers", "mosquitto,mochi,floodgate-goroutine,floodgate-epoll", "brokers to compare, in table order (also: floodgate, the default engine)")
	scenarios := flag.String("scenarios", "idle,fanin,fanout,latency,storm", "scenarios to run")
	out := flag.String("out", "", "output directory (default: $TMPDIR/floodgate-bench-TIME)")
	timeout := flag.Duration("timeout", 0, "bound on the whole run (0: 14m, 4m with -quick)")
	idle := flag.Int("idle", 0, "idle connections (0: 19000, 2000 with -quick)")
	fgFlags := flag.String("floodgate-flags", "", "extra flags for the floodgate binary (every engine)")
	flag.StringVar(&floodgateRoot, "floodgate-root", "", "workspace to build Floodgate from (default: this one)")
	verbose := flag.Bool("v", false, "show the load generator's live progress")
	flag.Parse()

	p := plan{quick: *quick, runs: *runs, idle: *idle, floodgateFlags: strings.Fields(*fgFlags), verbose: *verbose}
	if p.runs == 0 {
		p.runs = 3
		if p.quick {
			p.runs = 1
		}
	}
	if p.runs < 1 || p.runs > 9 {
		fatal(fmt.Errorf("-runs %d out of range [1, 9]", p.runs))
	}
	if *timeout == 0 {
		*timeout = 14 * time.Minute
		if p.quick {
			*timeout = 4 * time.Minute
		}
	}
	if *timeout > 60*time.Minute {
		fatal(fmt.Errorf("-timeout %v: at most 60m", *timeout))
	}
	for _, s := range strings.Split(*scenarios, ",") {
		if !slices.Contains(load.Scenarios, load.Scenario(s)) {
			fatal(fmt.Errorf("unknown scenario %q", s))
		}
		p.scenarios = append(p.scenarios, load.Scenario(s))
	}
	for _, b := range strings.Split(*brokers, ",") {
		if _, ok := brokerKinds[b]; !ok {
			fatal(fmt.Errorf("unknown broker %q (want mosquitto, mochi, floodgate-goroutine, floodgate-epoll or floodgate)", b))
		}
		p.brokers = append(p.brokers, b)
	}
	if *out == "" {
		*out = filepath.Join(os.TempDir(), "floodgate-bench-"+time.Now().Format("20060102-150405"))
	}
	p.out = *out

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := p.run(ctx, os.Stdout, os.Stderr); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// plan is one `make bench`.
type plan struct {
	quick          bool
	runs           int
	idle           int
	brokers        []string
	scenarios      []load.Scenario
	floodgateFlags []string
	out            string
	verbose        bool
}

// benchCase is one load: a scenario with its settings. Fan-in runs twice,
// with 500 and with 4,000 messages in flight: brokers bound their queues
// differently (Floodgate drops a subscriber whose queue of 1,000 packets
// overflows, mochi drops messages past 8,192 pending writes, mosquitto
// queues QoS 0 without a bound), and a window that suits one starves or
// floods another. Both figures are shown.
type benchCase struct {
	Name   string      `json:"name"`
	Config load.Config `json:"config"`
}

// cases returns the loads to run, in order.
func (p plan) cases() []benchCase {
	var cs []benchCase
	for _, s := range p.scenarios {
		c := p.config(s)
		if s != load.FanIn {
			cs = append(cs, benchCase{string(s), c})
			continue
		}
		for _, w := range []int{500, 4000} {
			c.InFlight = w
			cs = append(cs, benchCase{fmt.Sprintf("fanin/%d", w), c})
		}
	}
	return cs
}

// config returns the load for scenario s.
func (p plan) config(s load.Scenario) load.Config {
	// Private fd tables: the load generator's sockets do not count against
	// this process's RLIMIT_NOFILE (20,000 here), only the broker's do.
	c := load.Config{Scenario: s, Loops: 2, PrivateFDs: true, RampTimeout: 60 * time.Second}
	full := !p.quick
	pick := func(a, b int) int {
		if full {
			return a
		}
		return b
	}
	dur := time.Duration(pick(5, 1)) * time.Second
	switch s {
	case load.Idle:
		c.Conns = pick(19_000, 2_000) // the broker holds 19,000 of its 20,000 files
		if p.idle > 0 {
			c.Conns = p.idle
		}
		c.Hold = time.Duration(pick(3, 1)) * time.Second
	case load.Storm:
		c.Conns = pick(10_000, 2_000)
	case load.FanIn:
		c.Conns, c.Duration = pick(1000, 200), dur
	case load.FanOut:
		c.Conns, c.Rate, c.Duration = pick(1000, 200), 100, dur
	case load.Latency:
		c.Conns, c.Rate, c.Duration = 100, 20_000, dur
	}
	return c
}

// record is one run's outcome.
type record struct {
	Broker string       `json:"broker"`
	Case   string       `json:"case"`
	Run    int          `json:"run"`
	Result *load.Result `json:"result,omitempty"`
	Error  string       `json:"error,omitempty"`
}

func (p plan) run(ctx context.Context, stdout, stderr io.Writer) error {
	if err := os.MkdirAll(p.out, 0o755); err != nil {
		return err
	}
	bin, err := os.MkdirTemp("", "floodgate-bench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)

	start := time.Now()
	var present []string
	absent := map[string]string{}
	kinds := map[string]*brokerKind{}
	for _, name := range p.brokers {
		k, err := brokerKinds[name].prepare(ctx, bin, p.floodgateFlags)
		if err != nil {
			absent[name] = err.Error()
			fmt.Fprintf(stderr, "bench: %s is absent: %v\n", name, err)
			continue
		}
		kinds[name] = k
		present = append(present, name)
	}
	if len(present) == 0 {
		return errors.New("no broker to run")
	}
	var recs []record
	cases := p.cases()
	for _, bc := range cases {
		for _, name := range present {
			for i := 1; i <= p.runs; i++ {
				if ctx.Err() != nil {
					fmt.Fprintf(stderr, "bench: stopped (%v): the table shows the runs done so far\n", context.Cause(ctx))
					goto done
				}
				rec := p.one(ctx, kinds[name], bc, i, stderr)
				recs = append(recs, rec)
				fmt.Fprintf(stderr, "%-19s %-10s run %d/%d  %s\n", name, bc.Name, i, p.runs, headline(rec))
			}
		}
	}
done:
	sum := summarize(recs, present, cases)
	sum.Absent = absent
	sum.Date = start.UTC()
	sum.Seconds = time.Since(start).Seconds()
	sum.Runs = p.runs
	sum.Quick = p.quick
	sum.Cases = cases
	md := sum.markdown()
	fmt.Fprint(stdout, md)
	if err := os.WriteFile(filepath.Join(p.out, "bench.md"), []byte(md), 0o644); err != nil {
		return err
	}
	j, err := json.MarshalIndent(struct {
		Summary *summary `json:"summary"`
		Runs    []record `json:"runs"`
	}{sum, recs}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(p.out, "bench.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	if err := sum.chart(filepath.Join(p.out, "bench.png")); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench: %.0f s; wrote %s (bench.md, bench.json, bench.png, one folder per run)\n", sum.Seconds, p.out)
	return nil
}

// one starts a fresh broker, runs one scenario against it, and stops it.
func (p plan) one(ctx context.Context, k *brokerKind, bc benchCase, i int, stderr io.Writer) record {
	rec := record{Broker: k.name, Case: bc.Name, Run: i}
	dir := filepath.Join(p.out, fmt.Sprintf("%s-%s-%d", k.name, strings.ReplaceAll(bc.Name, "/", "-"), i))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		rec.Error = err.Error()
		return rec
	}
	b, err := k.start(ctx, dir)
	if err != nil {
		rec.Error = err.Error()
		return rec
	}
	c := bc.Config
	c.Target, c.BrokerPID, c.Broker = b.addr, b.pid(), k.name
	if p.verbose {
		c.Progress = stderr
	}
	res, err := load.Run(ctx, c)
	if stopErr := b.stop(); stopErr != nil && err == nil {
		err = stopErr
	}
	rec.Result = res
	if err != nil {
		rec.Error = err.Error()
	}
	if res != nil {
		if werr := res.Write(dir); werr != nil && rec.Error == "" {
			rec.Error = werr.Error()
		}
	}
	return rec
}

func headline(r record) string {
	var parts []string
	if r.Result != nil {
		for _, m := range metrics {
			if m.caseName == r.Case {
				if v, ok := m.value(r.Result); ok {
					parts = append(parts, fmt.Sprintf("%s %s", m.name, m.format(v)))
				}
			}
		}
	}
	if r.Result != nil && r.Result.Failed+r.Result.Lost > 0 {
		parts = append(parts, fmt.Sprintf("%d connections failed, %d lost", r.Result.Failed, r.Result.Lost))
	}
	if r.Error != "" {
		parts = append(parts, "ERROR: "+r.Error)
	}
	return strings.Join(parts, ", ")
}
