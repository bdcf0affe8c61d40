//go:build linux

// Command c1m is `make c1m`: one Floodgate broker process on this machine
// holds a million MQTT clients, each connected and subscribed, while a
// sample of them carries a background load, and the run reports what that
// cost.
//
//	go run -tags floodgate.solution floodgate/tools/cmd/c1m                 # 1,000,000 clients, as root
//	go run -tags floodgate.solution floodgate/tools/cmd/c1m -conns 15000    # a small try
//
// In order, it:
//
//  1. checks the machine (tools/internal/limits.CheckFit): free files
//     system wide for both ends of every connection, RLIMIT_NOFILE and
//     fs.nr_open for each event loop's fd table, MemAvailable for the
//     kernel's socket memory plus the broker's and its own, and the local
//     port range times the source addresses. It refuses, saying what is
//     short, if the run cannot fit;
//  2. as root, raises the sysctls that are short (fs.file-max,
//     nf_conntrack_max, ...), after saving their old values in the
//     results directory, and restores them on every way out: return,
//     error, SIGINT/SIGTERM/SIGHUP, and the watchdog;
//  3. builds capstone/cmd/floodgate with the solution tag (or takes
//     -broker-bin) and starts it with -engine epoll -max-conns N: in its own
//     process group, with a parent-death SIGKILL, stopped by its PID at the
//     end (SIGTERM, then SIGKILL);
//  4. runs the load generator in this process (tools/internal/load,
//     scenario HoldLoad): N clients over enough event loops with private
//     fd tables and one source address per 10,000, keepalive 300 s; then
//     -pairs of them publish -rate messages/s for -hold to as many idle
//     subscribers, for the p99 publish-to-delivery latency; then one
//     message goes to every idle subscriber (the sweep), and each loop
//     counts the clients it still holds (TCP ESTABLISHED). Before the
//     clients close, it reads the broker's RSS and its /metrics;
//  5. writes result.json, summary.md and chart.png into the results
//     directory ($TMPDIR/floodgate-c1m-TIME unless -out) and prints where.
//
// Bounded: -conns at most 1,000,000, everything within -timeout (10
// minutes by default), and a watchdog one minute later kills the broker,
// restores the sysctls and exits. Only 127.0.0.0/8 is ever addressed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"floodgate/tools/internal/limits"
	"floodgate/tools/internal/load"
)

func main() {
	var o options
	flag.IntVar(&o.conns, "conns", 1_000_000, "clients in all, each connected and subscribed (at most 1,000,000)")
	flag.IntVar(&o.pairs, "pairs", 500, "how many of the clients publish the background load, each to one idle subscriber")
	flag.Float64Var(&o.rate, "rate", 20_000, "background load, messages/s in total")
	flag.DurationVar(&o.hold, "hold", 60*time.Second, "how long the background load runs while every client is held")
	flag.IntVar(&o.window, "window", 2000, "connects in flight during the ramp")
	flag.IntVar(&o.loops, "loops", 0, "load generator event loops (0: enough that each fd table holds 90% of RLIMIT_NOFILE at most)")
	flag.StringVar(&o.sources, "sources", "127.0.1.0/24", "prefix of the source addresses (inside 127.0.0.0/8)")
	flag.IntVar(&o.sourceCount, "source-count", 0, "source addresses (0: one per 10,000 clients, at least 4)")
	flag.IntVar(&o.keepalive, "keepalive", 300, "MQTT keepalive, seconds (at least 300)")
	flag.DurationVar(&o.rampTimeout, "ramp-timeout", 4*time.Minute, "bound on the connect ramp")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound on the whole run, build included (at most 15m)")
	flag.BoolVar(&o.sweep, "sweep", true, "after the hold, send one message to every idle subscriber and count who got it")
	flag.BoolVar(&o.apply, "apply", true, "as root, raise the sysctls that are short for the run (restored at the end)")
	flag.StringVar(&o.engine, "engine", "epoll", "the broker's connection engine")
	flag.StringVar(&o.brokerBin, "broker-bin", "", "the floodgate binary (default: build capstone/cmd/floodgate with -tags floodgate.solution)")
	flag.StringVar(&o.brokerRev, "broker-rev", "", "build the broker from this git revision (git archive) instead of the working tree")
	flag.StringVar(&o.brokerFlags, "broker-flags", "", "more flags for the broker")
	flag.StringVar(&o.out, "out", "", "results directory (default: $TMPDIR/floodgate-c1m-TIME)")
	flag.BoolVar(&o.checkOnly, "check", false, "only check the limits and show the plan, then exit (0: it fits)")
	redraw := flag.String("redraw", "", "only write summary.md and chart.png again from DIR/result.json, and exit")
	flag.Parse()
	if *redraw != "" {
		if err := redrawReport(*redraw); err != nil {
			fmt.Fprintln(os.Stderr, "c1m:", err)
			os.Exit(1)
		}
		return
	}
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	o.root = "/"
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil {
		o.rlimit = int64(rl.Cur)
	}
	os.Exit(run(o, os.Args, os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitHeld    = 0 // every client held
	exitShort   = 1 // the run ran, and not every client was held, or it failed
	exitRefused = 2 // bad flags, or the run cannot fit here
	exitWatch   = 3 // the watchdog ended it
)

func run(o options, args []string, stdout, stderr io.Writer) int {
	p, err := makePlan(o)
	if err != nil {
		fmt.Fprintln(stderr, "c1m:", err)
		return exitRefused
	}
	out := o.out
	if out == "" {
		out, err = os.MkdirTemp("", "floodgate-c1m-"+time.Now().UTC().Format("20060102-150405")+"-")
	} else {
		err = os.MkdirAll(out, 0o755)
	}
	if err != nil {
		fmt.Fprintln(stderr, "c1m:", err)
		return exitRefused
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	d := &driver{p: p, out: out, stdout: stdout, euid: os.Geteuid(),
		command: "go run -tags floodgate.solution floodgate/tools/cmd/c1m " + strings.Join(args[1:], " ")}
	// The watchdog: if the run overstays its bound by a minute (a hang
	// somewhere), kill the broker by its PID, restore the sysctls, exit.
	watch := time.AfterFunc(o.timeout+time.Minute, func() {
		fmt.Fprintln(stderr, "c1m: watchdog: the run overstayed -timeout by a minute; killing the broker and restoring sysctls")
		d.kill()
		d.restore()
		os.Exit(exitWatch)
	})
	defer watch.Stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	rep, err := d.run(ctx)
	if errors.Is(err, limits.ErrWontFit) || errors.Is(err, limits.ErrNotRoot) {
		fmt.Fprintln(stderr, "c1m: refusing:", err)
		return exitRefused
	}
	if o.checkOnly && err == nil {
		fmt.Fprintln(stdout, "c1m: it fits (-check: nothing started)")
		if o.out == "" {
			os.Remove(out) // the empty directory made above
		}
		return exitHeld
	}
	code := exitShort
	if rep != nil {
		if werr := rep.Write(out); werr != nil {
			fmt.Fprintln(stderr, "c1m:", werr)
		}
		fmt.Fprintln(stdout)
		fmt.Fprint(stdout, rep.Markdown())
		fmt.Fprintf(stdout, "\nc1m: results in %s (result.json, summary.md, chart.png, broker.log)\n", out)
		if rep.AllHeld && err == nil {
			code = exitHeld
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "c1m:", err)
	}
	return code
}

// driver runs one c1m: it owns the broker process and the sysctl changes.
type driver struct {
	p       plan
	out     string
	stdout  io.Writer
	euid    int
	command string

	// startBroker starts the broker (tests replace it); nil: build or take
	// -broker-bin, then startBroker.
	startBroker func(ctx context.Context, d *driver) (*broker, []string, error)
	source      string // what the broker was built from

	brk         atomic.Pointer[broker] // the running broker, for the watchdog
	restoreOnce sync.Once
	restorePath string // set once sysctls were applied
	restored    []limits.Change
	restoreErr  error
}

func (d *driver) say(f string, a ...any) { fmt.Fprintf(d.stdout, "c1m: "+f+"\n", a...) }

// syncWriter serialises writes: the driver's lines and the load
// generator's progress goroutine share one output.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer // guarded by mu
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// kill SIGKILLs the broker by its PID (the watchdog's way out).
func (d *driver) kill() {
	if b := d.brk.Load(); b != nil {
		b.proc.Kill()
	}
}

// restore writes back the sysctls that apply changed, once, whichever
// path calls it first.
func (d *driver) restore() {
	d.restoreOnce.Do(func() {
		if d.restorePath == "" {
			return
		}
		d.restored, d.restoreErr = limits.Restore(d.p.opt.root, d.restorePath, d.euid)
		for _, c := range d.restored {
			d.say("restored %s = %s%s", c.Key, c.New, errNote(c.Err))
		}
	})
}

// run does the whole c1m and returns its report (nil if it refused).
func (d *driver) run(ctx context.Context) (*Report, error) {
	o, p := d.p.opt, d.p
	if _, ok := d.stdout.(*syncWriter); !ok {
		d.stdout = &syncWriter{w: d.stdout}
	}
	fit, err := limits.CheckFit(o.root, p.need)
	if err != nil {
		return nil, err
	}
	d.printFit(fit)
	canApply := o.apply && d.euid == 0
	if err := fit.Err(canApply); err != nil {
		return nil, err
	}
	d.say("plan: %s clients (%s publishers) over %d event loops with private fd tables (at most %s sockets each) and %d source addresses; broker -engine %s -max-conns %d; %d sysctl raise(s)",
		group(int64(o.conns)), group(int64(o.pairs)), p.loops, group(p.need.FilesPerTable), p.srcs, o.engine, o.conns, len(fit.Plan))
	if o.checkOnly {
		return nil, nil
	}
	rep := &Report{Date: time.Now().UTC(), Command: d.command, Machine: machine(o.root),
		Conns: o.conns, Pairs: o.pairs, Rate: o.rate, HoldS: o.hold.Seconds(), Loops: p.loops,
		SourceCount: p.srcs, KeepAlive: o.keepalive, Fit: fit, ConntrackPeak: -1}
	defer func() {
		d.restore()
		rep.Restored = d.restored
		if d.restoreErr != nil {
			rep.Errors = append(rep.Errors, "restore sysctls: "+d.restoreErr.Error())
		}
	}()
	switch {
	case len(fit.Plan) > 0 && canApply:
		path := filepath.Join(d.out, "sysctl-restore.json")
		d.restorePath = path // set first: a partial apply is restored too
		applied, err := limits.ApplyPlan(o.root, fit.Plan, d.euid, path)
		rep.Applied = applied
		for _, c := range applied {
			d.say("raised %s %s -> %s%s", c.Key, c.Old, c.New, errNote(c.Err))
		}
		if err != nil {
			return rep, fmt.Errorf("apply sysctls: %w", err)
		}
		d.say("old values saved in %s; if this process is SIGKILLed, restore them with: go run floodgate/tools/cmd/tune --restore %s", path, path)
	case len(fit.Plan) > 0:
		d.say("not raising %d sysctls (not root, or -apply=false): watch nf_conntrack_count", len(fit.Plan))
	}

	start := d.startBroker
	if start == nil {
		start = defaultStart
	}
	d.say("starting the broker")
	b, argv, err := start(ctx, d)
	rep.BrokerArgv, rep.BrokerSource = argv, d.source
	if err != nil {
		return rep, err
	}
	d.brk.Store(b)
	rep.BrokerPID = b.pid()
	rep.EngineLine = engineLine(b.logPath)
	d.say("broker pid %d on %s (metrics on %s)", b.pid(), b.addr, b.opsAddr)
	if rep.EngineLine != "" {
		d.say("broker: %s", rep.EngineLine)
	}

	// The load runs under loadCtx, which also ends if the broker dies.
	loadCtx, cancelLoad := context.WithCancelCause(ctx)
	defer cancelLoad(nil)
	mon := startMonitor(o.root, b, cancelLoad)
	cfg := p.cfg
	cfg.Target, cfg.BrokerPID, cfg.Progress = b.addr, b.pid(), d.stdout
	var metricsErr error
	cfg.BeforeClose = func() {
		m, err := scrapeMetrics(ctx, b.opsAddr)
		rep.BrokerMetrics, metricsErr = m, err
		if err == nil {
			d.say("the broker counts %s open connections and %s subscriptions", group(int64(m["connections_current"])), group(int64(m["subscriptions"])))
		}
	}
	d.say("ramping %s clients over %d event loops and %d source addresses", group(int64(o.conns)), p.loops, p.srcs)
	res, runErr := load.Run(loadCtx, cfg)
	mon.stop()
	rep.Load = res
	rep.ConntrackPeak, rep.FileNrPeak, rep.MemAvailableLowest = mon.conntrack, mon.fileNr, mon.memLow
	if metricsErr != nil {
		rep.Errors = append(rep.Errors, metricsErr.Error())
	}
	if runErr != nil {
		if c := context.Cause(loadCtx); c != nil && !errors.Is(c, context.Canceled) {
			runErr = fmt.Errorf("%w (%w)", runErr, c)
		}
		rep.Errors = append(rep.Errors, runErr.Error())
	}

	d.say("stopping the broker (pid %d)", b.pid())
	exit, stopErr := b.stop(30 * time.Second)
	d.brk.Store(nil)
	rep.BrokerExit = exit
	if rep.EngineLine == "" {
		rep.EngineLine = engineLine(b.logPath)
	}
	rep.Sharded = sharded(rep.EngineLine)
	if stopErr != nil {
		rep.Errors = append(rep.Errors, stopErr.Error())
	}
	rep.Machine.LoadAvgEnd = loadAvg(o.root)
	rep.figures()
	return rep, errors.Join(runErr, stopErr)
}

// defaultStart builds the broker (or takes -broker-bin) and starts it.
func defaultStart(ctx context.Context, d *driver) (*broker, []string, error) {
	o := d.p.opt
	exe := o.brokerBin
	d.source = "binary " + exe
	if exe == "" {
		d.say("building capstone/cmd/floodgate (-tags floodgate.solution)")
		var err error
		if exe, d.source, err = buildBroker(ctx, d.out, o.brokerRev); err != nil {
			return nil, nil, err
		}
	}
	var argv []string
	b, err := startBroker(ctx, filepath.Join(d.out, "broker.log"), func(addr, opsAddr string) []string {
		argv = brokerArgv(exe, addr, opsAddr, o.engine, o.conns, o.brokerExtra())
		return argv
	})
	return b, argv, err
}

func (d *driver) printFit(f limits.Fit) {
	tw := tabwriter.NewWriter(d.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "CHECK\tHAVE\tNEED\tOK\n")
	for _, c := range f.Checks {
		ok := "yes"
		switch {
		case c.OK:
		case c.Fixable:
			ok = "raise"
		case c.Advisory:
			ok = "watch"
		default:
			ok = "NO"
		}
		if c.Note != "" {
			ok += " (" + c.Note + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.Have, c.Need, ok)
	}
	tw.Flush()
}

// monitor samples machine-wide counters while the load runs, and ends the
// load if the broker exits.
type monitor struct {
	done chan struct{}
	wg   sync.WaitGroup
	// Written by the goroutine, read after stop.
	conntrack, fileNr, memLow int64
}

func startMonitor(root string, b *broker, cancel context.CancelCauseFunc) *monitor {
	m := &monitor{done: make(chan struct{}), conntrack: -1}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			m.sample(root)
			select {
			case <-m.done:
				return
			case <-b.proc.Exited():
				cancel(fmt.Errorf("the broker exited during the run (%v): see %s", b.proc.Err(), b.logPath))
				<-m.done
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *monitor) sample(root string) {
	if v, err := readInt(filepath.Join(root, "proc/sys/net/netfilter/nf_conntrack_count")); err == nil {
		m.conntrack = max(m.conntrack, v)
	}
	if b, err := os.ReadFile(filepath.Join(root, "proc/sys/fs/file-nr")); err == nil {
		if f := strings.Fields(string(b)); len(f) == 3 {
			var v int64
			if _, err := fmt.Sscan(f[0], &v); err == nil {
				m.fileNr = max(m.fileNr, v)
			}
		}
	}
	if v := meminfo(root, "MemAvailable"); v > 0 && (m.memLow == 0 || v < m.memLow) {
		m.memLow = v
	}
}

func (m *monitor) stop() {
	close(m.done)
	m.wg.Wait()
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var v int64
	_, err = fmt.Sscan(strings.TrimSpace(string(b)), &v)
	return v, err
}

// meminfo returns a /proc/meminfo field in bytes (0 if unreadable).
func meminfo(root, field string) int64 {
	b, err := os.ReadFile(filepath.Join(root, "proc/meminfo"))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb); err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

func machine(root string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), MemTotal: meminfo(root, "MemTotal"), GoVersion: runtime.Version()}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	m.LoadAvgStart = loadAvg(root)
	return m
}

// loadAvg returns the three load averages of /proc/loadavg ("?" if
// unreadable).
func loadAvg(root string) string {
	b, err := os.ReadFile(filepath.Join(root, "proc/loadavg"))
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}
