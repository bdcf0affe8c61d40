package load

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "floodgate/ch03-networking/03-mqtt"
)

// ErrTooManyFiles is returned when a run needs more sockets than this
// process may open (RLIMIT_NOFILE).
var ErrTooManyFiles = errors.New("load: not enough file descriptors")

// ErrRamp is returned when a connect ramp did not finish in time or no
// connection of it succeeded.
var ErrRamp = errors.New("load: connect ramp failed")

// shared is what the driver and the loops share: read-only settings, and
// counters that the loops update atomically.
type shared struct {
	cfg       Config
	scenario  Scenario
	target    sockaddrT
	sources   []netip.Addr
	version   mqtt.Version
	keepAlive uint16
	payload   int
	epoch     time.Time
	prefix    string // "lg/<run id>"
	runID     string

	tcpUp, connected, ready, readySubs, failed, lost atomic.Int64
	sent, received                                   atomic.Int64
	budget                                           atomic.Int64
	forgiven                                         atomic.Int64 // messages given up as lost, out of the window
	sweepSent, sweepRx                               atomic.Int64 // HoldLoad's sweep messages
	stopPub                                          atomic.Bool

	mu    sync.Mutex
	errs  map[string]int // guarded by mu: error text -> count
	phase string         // guarded by mu
	total int64          // guarded by mu: what the phase counts towards
	since time.Time      // guarded by mu: when the phase began
}

func (s *shared) noteErr(op string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.errs == nil {
		s.errs = make(map[string]int)
	}
	k := op + ": " + err.Error()
	if len(s.errs) < 20 || s.errs[k] > 0 {
		s.errs[k]++
	}
}

// window returns how many more messages the pumping publishers may have in
// flight (sent, not yet delivered).
func (s *shared) window() int64 {
	return int64(s.cfg.InFlight) - (s.sent.Load() - s.received.Load() - s.forgiven.Load())
}

func (s *shared) setPhase(p string, total int64) {
	s.mu.Lock()
	s.phase, s.total, s.since = p, total, time.Now()
	s.mu.Unlock()
}

func (s *shared) clientID(id int32) string {
	return "lg-" + s.runID + "-" + strconv.Itoa(int(id))
}

// filter is the topic filter subscriber id subscribes to.
func (s *shared) filter(id int32) string {
	switch s.scenario {
	case FanIn:
		return s.prefix + "/fanin/#"
	case FanOut:
		return s.prefix + "/fanout"
	case Latency:
		return s.prefix + "/lat/" + strconv.Itoa(int(id))
	case HoldLoad:
		if int(id) >= s.cfg.subs() {
			return s.prefix + "/pub/" + strconv.Itoa(int(id))
		}
	}
	return s.prefix + "/" + string(s.scenario) + "/" + strconv.Itoa(int(id))
}

// topic is the topic publisher id publishes to.
func (s *shared) topic(id int32) string {
	switch s.scenario {
	case FanIn:
		return s.prefix + "/fanin/" + strconv.Itoa(int(id))
	case FanOut:
		return s.prefix + "/fanout"
	case HoldLoad:
		// Publisher k sends to subscriber k×stride: the sample is spread
		// over every loop and source address.
		stride := max(1, s.cfg.subs()/s.cfg.Pairs)
		return s.filter(int32((int(id) - s.cfg.subs()) * stride))
	}
	return s.prefix + "/lat/" + strconv.Itoa(int(id)-s.cfg.Conns)
}

// loopFor places connection id: in FanIn the lone subscriber gets loop 0
// to itself, so that reading is never starved by the publishers.
func (s *shared) loopFor(id int32) int {
	n := s.cfg.Loops
	if s.scenario == FanIn && n > 1 {
		if id == 0 {
			return 0
		}
		return 1 + int(id-1)%(n-1)
	}
	if s.scenario == HoldLoad && int(id) >= s.cfg.subs() {
		return (int(id) - s.cfg.subs()) % s.cfg.pubLoops()
	}
	return int(id) % n
}

// Run runs one scenario to the end and returns its result. It stops by
// itself: at the latest after the configured ramps, duration, hold and a
// drain (Config.bound), or when ctx is done. Every socket and goroutine it
// started is closed and stopped when it returns. A result is returned with
// a non-nil error when the run went part of the way (for example a ramp
// that reached only some connections).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	target, err := ParseTarget(cfg.Target)
	if err != nil {
		return nil, err
	}
	sources, err := Sources(cfg.Sources, cfg.SourceCount)
	if err != nil {
		return nil, err
	}
	if lim, err := fdLimit(); err == nil {
		per, where := cfg.totalConns()+64, "this process"
		if cfg.PrivateFDs {
			per, where = cfg.maxPerLoop()+64, "each event loop's fd table"
		}
		if uint64(per) > lim {
			return nil, fmt.Errorf("%w: %d connections need about %d files in %s, RLIMIT_NOFILE is %d (more loops with PrivateFDs spread them)",
				ErrTooManyFiles, cfg.totalConns(), per, where, lim)
		}
	}
	var rid [4]byte
	_, _ = rand.Read(rid[:])
	s := &shared{
		cfg: cfg, scenario: cfg.Scenario, target: sockaddr(target), sources: sources,
		version: mqtt.Version(cfg.Protocol), keepAlive: cfg.KeepAlive, payload: cfg.Payload,
		epoch: time.Now(), runID: hex.EncodeToString(rid[:]),
	}
	s.prefix = "lg/" + s.runID
	s.budget.Store(cfg.Messages)

	ctx, cancel := context.WithTimeout(ctx, cfg.bound())
	defer cancel()
	e, err := newEngine(s, cfg.Loops)
	if err != nil {
		return nil, err
	}
	e.start()
	stopped := false
	stopEngine := func() {
		if !stopped {
			stopped = true
			e.stop()
		}
	}
	defer stopEngine()

	res := &Result{
		Scenario: cfg.Scenario, Broker: cfg.Broker, Target: target.String(), Date: time.Now().UTC(),
		Params: Params{Conns: cfg.Conns, Rate: cfg.Rate, DurationS: cfg.Duration.Seconds(), HoldS: cfg.Hold.Seconds(),
			Payload: cfg.Payload, Window: cfg.Window, InFlight: cfg.InFlight, Loops: cfg.Loops, Sources: cfg.Sources, SourceCount: cfg.SourceCount,
			Protocol: cfg.Protocol, KeepAlive: int(cfg.KeepAlive), PrivateFDs: cfg.PrivateFDs},
		BrokerPID: cfg.BrokerPID,
	}
	if cfg.BrokerPID != 0 {
		if res.BrokerRSSBefore, err = ReadRSS(cfg.BrokerPID); err != nil {
			return nil, err
		}
	}
	overflows0, _ := listenOverflows()
	prog := startProgress(s, cfg.Progress, cfg.Terminal)
	r := &runner{s: s, e: e, cfg: cfg, res: res}
	runErr := r.run(ctx)
	if cfg.BeforeClose != nil {
		cfg.BeforeClose()
	}
	if ready := s.ready.Load(); cfg.BrokerPID != 0 && ready > 0 {
		if rss, err := ReadRSS(cfg.BrokerPID); err == nil {
			res.BrokerRSSAfter = rss
			if cfg.Scenario == Idle || cfg.Scenario == Storm || cfg.Scenario == HoldLoad {
				res.BrokerRSSPerConn = float64(rss-res.BrokerRSSBefore) / float64(ready)
			}
		} else {
			runErr = errors.Join(runErr, err)
		}
	}
	res.LoadgenRSS, _ = ReadRSS(os.Getpid())
	if o, err := listenOverflows(); err == nil {
		res.ListenOverflows = o - overflows0
	}
	s.setPhase("closing", 0)
	stopEngine()
	res.Timeline = prog.stop()
	r.collect()
	return res, runErr
}

type runner struct {
	s   *shared
	e   *engine
	cfg Config
	res *Result
	t0  time.Duration // publishing started, since s.epoch
	t1  time.Duration // publishing stopped
}

func (r *runner) run(ctx context.Context) error {
	s, n := r.s, int32(r.cfg.Conns)
	var err error
	switch r.cfg.Scenario {
	case Idle, Storm:
		if err = r.ramp(ctx, "connect+subscribe", 0, n, false); err != nil {
			return err
		}
		if r.cfg.Scenario == Idle {
			s.setPhase("hold", int64(r.cfg.Hold/time.Millisecond))
			err = sleep(ctx, r.cfg.Hold)
		}
	case FanIn:
		if err = r.ramp(ctx, "subscriber", 0, 1, false); err == nil {
			if err = r.ramp(ctx, "publishers", 1, n+1, true); err == nil {
				err = r.publish(ctx)
			}
		}
	case FanOut:
		if err = r.ramp(ctx, "subscribers", 0, n, false); err == nil {
			if err = r.ramp(ctx, "publisher", n, n+1, true); err == nil {
				err = r.publish(ctx)
			}
		}
	case Latency:
		if err = r.ramp(ctx, "subscribers", 0, n, false); err == nil {
			if err = r.ramp(ctx, "publishers", n, 2*n, true); err == nil {
				err = r.publish(ctx)
			}
		}
	case HoldLoad:
		err = r.holdLoad(ctx)
	}
	return err
}

// holdLoad is the HoldLoad scenario: ramp, publish, sweep, census. Marks
// are taken at each step; the census is taken whatever failed before it.
func (r *runner) holdLoad(ctx context.Context) error {
	subs, n := int32(r.cfg.subs()), int32(r.cfg.Conns)
	r.mark("start")
	err := r.ramp(ctx, "subscribers", 0, subs, false)
	if err == nil {
		err = r.ramp(ctx, "publishers", subs, n, true)
	}
	r.mark("ramped")
	if err == nil {
		err = r.publish(ctx)
		r.mark("published")
	}
	if err == nil && r.cfg.Sweep {
		err = r.sweep(ctx)
		r.mark("swept")
	}
	c, cerr := r.census(ctx)
	r.res.Census = c
	r.mark("census")
	return errors.Join(err, cerr)
}

// mark records the counters, the broker's RSS and the kernel's slab now.
func (r *runner) mark(name string) {
	m := Mark{Name: name, T: time.Since(r.s.epoch).Seconds(), Ready: r.s.ready.Load(),
		Failed: r.s.failed.Load(), Lost: r.s.lost.Load()}
	if pid := r.cfg.BrokerPID; pid != 0 {
		m.BrokerRSS, _ = ReadRSS(pid)
	}
	m.Slab, m.SUnreclaim, _ = ReadSlab()
	r.res.Marks = append(r.res.Marks, m)
}

// sweep sends one message to every idle subscriber's topic, through the
// publishers, and waits for the deliveries (see Config.Sweep).
func (r *runner) sweep(ctx context.Context) error {
	s := r.s
	subs := int64(r.cfg.subs())
	s.setPhase("sweep", subs)
	ctx, cancel := context.WithTimeout(ctx, maxSweep)
	defer cancel()
	chunk := int64(min(500, r.cfg.SweepWindow))
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	lastRx, lastRxAt := int64(-1), time.Now()
	next, pl := int64(0), 0
	for {
		rx := s.sweepRx.Load()
		if rx != lastRx {
			lastRx, lastRxAt = rx, time.Now()
		}
		if rx >= subs {
			break
		}
		if next >= subs && time.Since(lastRxAt) > 5*time.Second {
			break // what is missing is not coming
		}
		// Paced at SweepRate, and at most SweepWindow posted and not yet
		// delivered: a slow broker slows the sweep instead of queueing
		// without bound in the publishers' buffers.
		allowed := int64(time.Since(start).Seconds()*r.cfg.SweepRate) + chunk
		for next < subs && next < allowed && next+chunk-rx <= int64(r.cfg.SweepWindow) {
			ids := make([]int32, 0, min(chunk, subs-next))
			for id := next; id < min(next+chunk, subs); id++ {
				ids = append(ids, int32(id))
			}
			next += int64(len(ids))
			r.e.post(pl, func(l *loop) { l.sweep(ids) })
			pl = (pl + 1) % r.cfg.pubLoops()
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil // bounded: the census says how many it reached
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// census asks every loop to count its connections (see loop.census).
func (r *runner) census(ctx context.Context) (*Census, error) {
	r.s.setPhase("census", 0)
	got := make(chan Census, len(r.e.loops))
	for i := range r.e.loops {
		r.e.post(i, func(l *loop) { got <- l.census() })
	}
	sum := &Census{}
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for range r.e.loops {
		select {
		case c := <-got:
			sum.add(c)
		case <-timeout.C:
			return sum, errors.New("load: census: a loop did not answer within 30 s")
		case <-ctx.Done():
			return sum, fmt.Errorf("load: census: %w", ctx.Err())
		}
	}
	sum.SweepTargets = int64(r.cfg.subs())
	if !r.cfg.Sweep {
		sum.SweepTargets = 0
	}
	sum.SweepSent = r.s.sweepSent.Load()
	sum.Lost, sum.Failed = r.s.lost.Load(), r.s.failed.Load()
	return sum, nil
}

// ramp dials ids [from, to) with at most Window connects in flight and
// waits until each is ready (CONNACK, and SUBACK for a subscriber) or
// failed.
func (r *runner) ramp(ctx context.Context, what string, from, to int32, pub bool) error {
	s := r.s
	s.setPhase(what, int64(to-from))
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RampTimeout)
	defer cancel()
	base := s.ready.Load() + s.failed.Load()
	start := time.Now()
	next := from
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	batches := make([][]int32, r.cfg.Loops)
	for {
		done := s.ready.Load() + s.failed.Load() - base
		if done >= int64(to-from) {
			break
		}
		if room := int64(r.cfg.Window) - (int64(next-from) - done); room > 0 && next < to {
			k := min(int32(room), to-next, 2000)
			for id := next; id < next+k; id++ {
				i := s.loopFor(id)
				batches[i] = append(batches[i], id)
			}
			next += k
			for i, ids := range batches {
				if len(ids) == 0 {
					continue
				}
				r.e.post(i, func(l *loop) {
					for _, id := range ids {
						l.dial(id, pub)
					}
				})
				batches[i] = nil
			}
		}
		select {
		case <-ctx.Done():
			d := time.Since(start)
			r.res.Ramps = append(r.res.Ramps, Ramp{What: what, Conns: int(to - from), Seconds: d.Seconds()})
			return fmt.Errorf("%w: %s: %d of %d done after %v: %w", ErrRamp, what, done, to-from, d.Round(time.Millisecond), context.Cause(ctx))
		case <-tick.C:
		}
	}
	d := time.Since(start)
	r.res.Ramps = append(r.res.Ramps, Ramp{What: what, Conns: int(to - from), Seconds: d.Seconds(), PerSecond: float64(to-from) / d.Seconds()})
	if s.ready.Load() == 0 {
		return fmt.Errorf("%w: %s: no connection succeeded", ErrRamp, what)
	}
	return nil
}

// publish starts the publishers (paced, or pumping when Rate is 0), stops
// them after Duration or when the message budget runs out, then waits for
// deliveries to drain: until everything expected arrived, nothing arrived
// for a second, or 5 seconds passed.
func (r *runner) publish(ctx context.Context) error {
	s := r.s
	s.setPhase("publish", int64(r.cfg.Duration/time.Millisecond))
	pubs := int64(r.cfg.Conns)
	switch r.cfg.Scenario {
	case FanOut:
		pubs = 1
	case HoldLoad:
		pubs = int64(r.cfg.Pairs)
	}
	t0 := time.Now()
	r.t0 = t0.Sub(s.epoch)
	for i := range r.e.loops {
		r.e.post(i, func(l *loop) {
			if r.cfg.Rate == 0 {
				l.startBlast()
				return
			}
			l.startPacing(r.cfg.Rate*float64(len(l.pubs))/float64(pubs), t0)
		})
	}
	timer := time.NewTimer(r.cfg.Duration)
	defer timer.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	lastRx, lastRxAt := int64(-1), time.Now()
wait:
	for !s.stopPub.Load() {
		select {
		case <-ctx.Done():
			break wait
		case <-timer.C:
			break wait
		case <-poll.C:
		}
		// A broker that drops messages would close the in-flight window
		// for good: after 200 ms without a delivery, count what is in
		// flight as lost and open the window again.
		if rx := s.received.Load(); rx != lastRx {
			lastRx, lastRxAt = rx, time.Now()
		} else if r.cfg.Rate == 0 && time.Since(lastRxAt) > 200*time.Millisecond && s.window() <= 0 {
			s.forgiven.Store(s.sent.Load() - rx)
			for i := range r.e.loops {
				r.e.post(i, func(*loop) {}) // wake the loops
			}
			lastRxAt = time.Now()
		}
	}
	s.stopPub.Store(true)
	r.t1 = time.Since(s.epoch)
	s.setPhase("drain", 0)
	deadline := time.Now().Add(5 * time.Second)
	last, lastChange := s.received.Load(), time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		got := s.received.Load()
		if got >= r.expected() {
			break
		}
		if got != last {
			last, lastChange = got, time.Now()
		} else if time.Since(lastChange) > time.Second {
			break
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// expected is how many deliveries the messages sent so far should make.
func (r *runner) expected() int64 {
	if r.cfg.Scenario == FanOut {
		return r.s.sent.Load() * r.s.readySubs.Load()
	}
	return r.s.sent.Load()
}

// collect fills in the result once the loops have stopped.
func (r *runner) collect() {
	s, res := r.s, r.res
	res.Ready, res.Failed, res.Lost = s.ready.Load(), s.failed.Load(), s.lost.Load()
	res.Sent, res.Received = s.sent.Load(), s.received.Load()
	var h Histogram
	var lastRx time.Duration
	for _, l := range r.e.loops {
		h.Merge(&l.hist)
		lastRx = max(lastRx, l.lastRx)
	}
	res.Latency = h.Summary()
	res.LatencyCurve = h.Curve()
	if res.Sent > 0 {
		res.Expected = r.expected()
		res.PublishSeconds = (r.t1 - r.t0).Seconds()
		res.SendRate = float64(res.Sent) / res.PublishSeconds
		// Over the publishing time at least: a subscriber that the
		// broker dropped early does not make a short, fast window.
		res.DeliverySeconds = max(lastRx-r.t0, r.t1-r.t0).Seconds()
		if res.DeliverySeconds > 0 {
			res.Throughput = float64(res.Received) / res.DeliverySeconds
		}
	}
	if len(res.Ramps) > 0 {
		var n int
		var secs float64
		for _, rp := range res.Ramps {
			n += rp.Conns
			secs += rp.Seconds
		}
		res.RampSeconds = secs
		res.ConnectRate = float64(n) / secs
	}
	s.mu.Lock()
	if len(s.errs) > 0 {
		res.Errors = make(map[string]int, len(s.errs))
		for k, v := range s.errs {
			res.Errors[k] = v
		}
	}
	s.mu.Unlock()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ReadRSS returns the resident set size of process pid, in bytes, from
// the VmRSS line of /proc/PID/status.
func ReadRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("load: read RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("load: read RSS of %d: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("load: read RSS of %d: no VmRSS line", pid)
}

// ReadSlab returns the machine's Slab and SUnreclaim, in bytes, from
// /proc/meminfo.
func ReadSlab() (slab, unreclaim int64, err error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, 0, fmt.Errorf("load: read slab: %w", err)
	}
	return parseSlab(string(b))
}

func parseSlab(meminfo string) (slab, unreclaim int64, err error) {
	var found int
	for line := range strings.Lines(meminfo) {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || (name != "Slab" && name != "SUnreclaim") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 1 {
			return 0, 0, fmt.Errorf("load: read slab: bad line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, 0, fmt.Errorf("load: read slab: bad line %q", line)
		}
		if name == "Slab" {
			slab = kb << 10
		} else {
			unreclaim = kb << 10
		}
		found++
	}
	if found != 2 {
		return 0, 0, errors.New("load: read slab: no Slab or SUnreclaim line in /proc/meminfo")
	}
	return slab, unreclaim, nil
}

// listenOverflows returns the machine's TcpExt ListenOverflows counter from
// /proc/net/netstat: SYNs dropped because a listener's accept queue was full.
func listenOverflows() (int64, error) {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return 0, err
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(vals) != len(names) {
			continue
		}
		for j, n := range names {
			if n == "ListenOverflows" {
				return strconv.ParseInt(vals[j], 10, 64)
			}
		}
	}
	return 0, errors.New("load: no ListenOverflows in /proc/net/netstat")
}
