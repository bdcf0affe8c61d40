package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"floodgate/tools/internal/limits"
	"floodgate/tools/internal/load"
)

// Hard bounds on the flags: the run is bounded whatever they say.
const (
	maxConns   = load.MaxConns // the count cap
	maxTimeout = 15 * time.Minute
	minConns   = 10
)

// options are the flags.
type options struct {
	conns       int
	pairs       int
	rate        float64
	hold        time.Duration
	window      int
	loops       int
	sources     string
	sourceCount int
	keepalive   int
	rampTimeout time.Duration
	timeout     time.Duration
	sweep       bool
	apply       bool
	engine      string
	brokerBin   string
	brokerRev   string
	checkOnly   bool
	brokerFlags string
	out         string
	root        string // where /proc is: "/" (tests: a fixture)
	rlimit      int64  // soft RLIMIT_NOFILE of this process (each loop's table)
}

// plan is what the flags come to: the load's shape and what it needs.
type plan struct {
	opt   options
	loops int
	srcs  int
	need  limits.Need
	cfg   load.Config // without Target, BrokerPID, Progress, BeforeClose
}

// fdSpare is what each private fd table keeps besides sockets: the
// descriptors the process had open when the loop unshared (other loops'
// epoll and eventfd, the Go runtime's, the broker log...), and some slack.
const fdSpare = 400

// makePlan checks the flags and derives the load's shape from them: enough
// event loops that each fd table's share fits under RLIMIT_NOFILE with
// 10% to spare, and one source address per 10,000 connections (at least 4).
func makePlan(o options) (plan, error) {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if o.conns < minConns || o.conns > maxConns {
		bad("-conns %d out of range [%d, %d]", o.conns, minConns, maxConns)
	}
	if o.pairs < 1 || o.pairs > load.MaxPairs || 2*o.pairs > o.conns {
		bad("-pairs %d out of range [1, min(%d, conns/2)]", o.pairs, load.MaxPairs)
	}
	if o.rate <= 0 || o.rate > 200_000 {
		bad("-rate %g out of range (0, 200000]", o.rate)
	}
	if o.hold < time.Second || o.hold > 5*time.Minute {
		bad("-hold %v out of range [1s, 5m]", o.hold)
	}
	if o.window < 1 || o.window > 4000 {
		bad("-window %d out of range [1, 4000] (keep it under net.core.somaxconn)", o.window)
	}
	if o.keepalive < 300 || o.keepalive > 65535 {
		bad("-keepalive %d out of range [300, 65535]", o.keepalive)
	}
	if o.timeout < time.Minute || o.timeout > maxTimeout {
		bad("-timeout %v out of range [1m, %v]", o.timeout, maxTimeout)
	}
	if o.rampTimeout < 10*time.Second || o.rampTimeout >= o.timeout {
		bad("-ramp-timeout %v out of range [10s, -timeout)", o.rampTimeout)
	}
	if o.engine != "epoll" && o.engine != "goroutine" {
		bad("-engine %q: epoll or goroutine", o.engine)
	}
	if o.brokerBin != "" && o.brokerRev != "" {
		bad("-broker-bin and -broker-rev: give one")
	}
	if o.rlimit <= fdSpare+1000 {
		bad("RLIMIT_NOFILE %d is too small for private fd tables", o.rlimit)
	}
	if len(errs) > 0 {
		return plan{}, errors.Join(errs...)
	}
	p := plan{opt: o}
	perTable := int((o.rlimit - fdSpare) * 9 / 10)
	p.loops = o.loops
	if p.loops == 0 {
		p.loops = max(2, (o.conns+perTable-1)/perTable)
	}
	if p.loops < 1 || p.loops > load.MaxLoops {
		return plan{}, fmt.Errorf("-loops %d out of range [1, %d]", p.loops, load.MaxLoops)
	}
	p.srcs = o.sourceCount
	if p.srcs == 0 {
		p.srcs = max(4, o.conns/10_000+1)
	}
	p.cfg = load.Config{
		Scenario: load.HoldLoad, Conns: o.conns, Pairs: o.pairs, Rate: o.rate, Duration: o.hold,
		Sources: o.sources, SourceCount: p.srcs, Window: o.window, Loops: p.loops, PrivateFDs: true,
		KeepAlive: uint16(o.keepalive), RampTimeout: o.rampTimeout, Sweep: o.sweep, Broker: "floodgate-" + o.engine,
	}
	perLoop := (o.conns-o.pairs+p.loops-1)/p.loops + (o.pairs+min(p.loops, 4, o.pairs)-1)/min(p.loops, 4, o.pairs)
	p.need = limits.Need{Conns: int64(o.conns), SourceAddrs: int64(p.srcs), FilesPerTable: int64(perLoop)}
	if _, err := load.Sources(o.sources, p.srcs); err != nil {
		return plan{}, fmt.Errorf("-sources %s with %d addresses: %w", o.sources, p.srcs, err)
	}
	return p, nil
}

// brokerExtra splits -broker-flags.
func (o options) brokerExtra() []string { return strings.Fields(o.brokerFlags) }
