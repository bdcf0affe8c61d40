package load

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"
)

// Scenario names one kind of load.
type Scenario string

// The scenarios. What Config.Conns counts depends on the scenario.
const (
	// Idle connects and subscribes Conns clients (one topic each), holds
	// them for Hold and reports the broker's RSS per connection.
	Idle Scenario = "idle"
	// Storm connects and subscribes Conns clients as fast as the broker
	// lets it (Window connects in flight) and reports connects+subscribes
	// per second.
	Storm Scenario = "storm"
	// FanIn runs Conns publishers, each on its own topic, into one
	// subscriber of a wildcard filter, as fast as the sockets take the
	// messages (or at Rate if set), and reports delivered messages/s.
	FanIn Scenario = "fanin"
	// FanOut runs one publisher at Rate messages/s into Conns subscribers
	// of its topic and reports deliveries/s and latency.
	FanOut Scenario = "fanout"
	// Latency runs Conns publisher/subscriber pairs at Rate messages/s in
	// total and reports publish-to-delivery latency percentiles.
	Latency Scenario = "latency"
	// HoldLoad is make c1m's scenario: Conns clients in all, each connected
	// and subscribed to its own topic. Pairs of them are publishers, the
	// rest idle subscribers; once every client is ready, the publishers
	// send Rate messages/s for Duration to Pairs of the subscribers
	// (spread evenly over them) and the run reports publish-to-delivery
	// latency. Then, with Sweep, one message goes to every idle
	// subscriber, and the run ends with a Census of the connections still
	// held. HoldLoad is not in Scenarios: make bench does not run it.
	HoldLoad Scenario = "holdload"
)

// Scenarios lists every scenario in the order make bench runs them.
var Scenarios = []Scenario{Idle, FanIn, FanOut, Latency, Storm}

// Hard limits: Config values above them are refused, so that every run is
// bounded in count and time whatever the flags say.
const (
	MaxConns       = 1_000_000
	MaxDuration    = 10 * time.Minute
	MaxMessages    = 1_000_000_000
	MaxRate        = 5_000_000
	MaxPayload     = 64 << 10
	MinPayload     = 8 // the timestamp
	MaxWindow      = 100_000
	MaxLoops       = 256
	MaxRampTimeout = 10 * time.Minute
	MaxPairs       = 10_000
)

// Config is one run. The zero value runs the idle scenario with 1,000
// connections against 127.0.0.1:1883; every zero field takes the default
// documented on it.
type Config struct {
	Scenario Scenario // default Idle
	// Target is the broker, "IP:port" with IP in 127.0.0.0/8 (default
	// "127.0.0.1:1883"). Anything else is refused with ErrNotLoopback.
	Target string
	// Sources is the prefix that source addresses come from (default
	// "127.0.1.0/24"); it must lie inside 127.0.0.0/8. SourceCount is how
	// many are used, round robin (default: 1 per 10,000 connections, at
	// least 4, at most the usable addresses of the prefix).
	Sources     string
	SourceCount int
	// Conns is the connection count: clients for Idle and Storm,
	// publishers for FanIn, subscribers for FanOut, pairs for Latency.
	// Default 1,000 (100 for Latency); at most MaxConns.
	Conns int
	// Rate is messages per second published in total: default 100 for
	// FanOut, 20,000 for Latency, 0 (as fast as possible) for FanIn.
	Rate float64
	// InFlight caps the messages that FanIn's publishers, when Rate is 0,
	// may have sent and not yet seen delivered (default 500): the
	// publishers go as fast as the broker delivers, without flooding it.
	InFlight int
	// Duration is how long publishers publish (default 5s).
	Duration time.Duration
	// Hold is how long Idle holds its connections before it reads the
	// broker's memory (default 5s).
	Hold time.Duration
	// Messages caps the messages published in total (default 10,000,000).
	Messages int64
	// Pairs is, for HoldLoad, how many of the Conns clients publish (default
	// 500, at most MaxPairs and Conns/2); each publishes to one idle
	// subscriber's topic. Other scenarios ignore it.
	Pairs int
	// Sweep, for HoldLoad, sends one message to every idle subscriber after
	// the publishing time, at most SweepRate messages/s (default 50,000)
	// and SweepWindow sent and not yet delivered (default 20,000), and
	// counts the subscribers it reached (Census.Swept). The sweep stops
	// when every subscriber got its message, when nothing arrived for 5 s,
	// or after 3 minutes.
	Sweep       bool
	SweepRate   float64
	SweepWindow int
	// BeforeClose, if not nil, is called once by Run, from the goroutine
	// that called Run and with no lock held, after the census (HoldLoad) or
	// the hold (Idle) and before any connection is closed: the moment to
	// ask the broker what it holds. Run waits for it to return. It is
	// left out of JSON (tools/cmd/bench records its Configs).
	BeforeClose func() `json:"-"`
	// Payload is the message size in bytes, at least 8 (default 64).
	Payload int
	// Window is how many connects may be in flight at once (default 100).
	// Keep it at or below the broker's listen backlog: mosquitto listens
	// with a backlog of 100, and a SYN that overflows it is retried only
	// after a second, which measures the backlog, not the broker (Result's
	// ListenOverflows counts them).
	Window int
	// Loops is the number of event loops (default GOMAXPROCS, at most 8).
	Loops int
	// KeepAlive is the MQTT keepalive in seconds (default 300); the
	// loops send PINGREQ every half keepalive.
	KeepAlive uint16
	// PrivateFDs gives each event loop its own file descriptor table
	// (runtime.LockOSThread, then unshare(CLONE_FILES)): RLIMIT_NOFILE
	// then caps each loop's sockets, not the process's, so a run may hold
	// about Loops × (RLIMIT_NOFILE − 64) connections. Linux only.
	PrivateFDs bool
	// Protocol is the MQTT protocol level: 4 (3.1.1, default) or 5.
	Protocol int
	// RampTimeout bounds each connect ramp (default 60s).
	RampTimeout time.Duration
	// BrokerPID, if not 0, is the broker's process: its VmRSS is read from
	// /proc/PID/status before and after the load.
	BrokerPID int
	// Broker labels the result (default "broker").
	Broker string
	// Progress receives live progress (nil: none). Terminal says it is a
	// terminal: a redrawn progress bar instead of a line per second.
	Progress io.Writer `json:"-"`
	Terminal bool      `json:"-"`
}

// withDefaults returns c with defaults filled in, or an error for a value
// out of range.
func (c Config) withDefaults() (Config, error) {
	if c.Scenario == "" {
		c.Scenario = Idle
	}
	if !slices.Contains(Scenarios, c.Scenario) && c.Scenario != HoldLoad {
		return c, fmt.Errorf("load: unknown scenario %q (want one of %v)", c.Scenario, Scenarios)
	}
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	if c.Target == "" {
		c.Target = "127.0.0.1:1883"
	}
	if c.Sources == "" {
		c.Sources = "127.0.1.0/24"
	}
	if c.Scenario == Latency {
		def(&c.Conns, 100)
	}
	def(&c.Conns, 1000)
	if c.Scenario == HoldLoad {
		def(&c.Pairs, min(500, c.Conns/2))
	}
	if c.Sweep {
		if c.SweepRate == 0 {
			c.SweepRate = 50_000
		}
		def(&c.SweepWindow, 20_000)
	}
	def(&c.SourceCount, max(4, c.Conns/10_000+1))
	def(&c.Payload, 64)
	def(&c.Window, 100)
	def(&c.InFlight, 500)
	def(&c.Loops, min(runtime.GOMAXPROCS(0), 8))
	def(&c.Protocol, 4)
	if c.Rate == 0 {
		switch c.Scenario {
		case FanOut:
			c.Rate = 100
		case Latency, HoldLoad:
			c.Rate = 20_000
		}
	}
	if c.Duration == 0 {
		c.Duration = 5 * time.Second
	}
	if c.Hold == 0 {
		c.Hold = 5 * time.Second
	}
	if c.Messages == 0 {
		c.Messages = 10_000_000
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = 300
	}
	if c.RampTimeout == 0 {
		c.RampTimeout = time.Minute
	}
	if c.Broker == "" {
		c.Broker = "broker"
	}
	switch {
	case c.Conns < 1 || c.Conns > MaxConns:
		return c, fmt.Errorf("load: conns %d out of range [1, %d]", c.Conns, MaxConns)
	case c.Scenario == Latency && 2*c.Conns > MaxConns:
		return c, fmt.Errorf("load: latency pairs %d out of range [1, %d]", c.Conns, MaxConns/2)
	case c.Scenario == HoldLoad && (c.Pairs < 1 || c.Pairs > MaxPairs || 2*c.Pairs > c.Conns):
		return c, fmt.Errorf("load: hold: pairs %d out of range [1, min(%d, conns/2 = %d)]", c.Pairs, MaxPairs, c.Conns/2)
	case c.SweepRate < 0 || c.SweepRate > MaxRate:
		return c, fmt.Errorf("load: sweep rate %g out of range [0, %d]", c.SweepRate, MaxRate)
	case c.Sweep && (c.SweepWindow < 1 || c.SweepWindow > MaxWindow):
		return c, fmt.Errorf("load: sweep window %d out of range [1, %d]", c.SweepWindow, MaxWindow)
	case c.Rate < 0 || c.Rate > MaxRate:
		return c, fmt.Errorf("load: rate %g out of range [0, %d]", c.Rate, MaxRate)
	case c.Duration < 0 || c.Duration > MaxDuration:
		return c, fmt.Errorf("load: duration %v out of range (0, %v]", c.Duration, MaxDuration)
	case c.Hold < 0 || c.Hold > MaxDuration:
		return c, fmt.Errorf("load: hold %v out of range (0, %v]", c.Hold, MaxDuration)
	case c.Messages < 0 || c.Messages > MaxMessages:
		return c, fmt.Errorf("load: messages %d out of range [1, %d]", c.Messages, MaxMessages)
	case c.Payload < MinPayload || c.Payload > MaxPayload:
		return c, fmt.Errorf("load: payload %d out of range [%d, %d]", c.Payload, MinPayload, MaxPayload)
	case c.Window < 1 || c.Window > MaxWindow:
		return c, fmt.Errorf("load: window %d out of range [1, %d]", c.Window, MaxWindow)
	case c.InFlight < 1 || c.InFlight > MaxWindow*10:
		return c, fmt.Errorf("load: in-flight %d out of range [1, %d]", c.InFlight, MaxWindow*10)
	case c.Loops < 1 || c.Loops > MaxLoops:
		return c, fmt.Errorf("load: loops %d out of range [1, %d]", c.Loops, MaxLoops)
	case c.Protocol != 4 && c.Protocol != 5:
		return c, fmt.Errorf("load: protocol %d: want 4 (3.1.1) or 5", c.Protocol)
	case c.RampTimeout < 0 || c.RampTimeout > MaxRampTimeout:
		return c, fmt.Errorf("load: ramp timeout %v out of range (0, %v]", c.RampTimeout, MaxRampTimeout)
	case c.BrokerPID < 0:
		return c, fmt.Errorf("load: broker pid %d", c.BrokerPID)
	}
	return c, nil
}

// totalConns is how many sockets the run opens.
func (c Config) totalConns() int {
	switch c.Scenario {
	case FanIn, FanOut:
		return c.Conns + 1
	case Latency:
		return 2 * c.Conns
	}
	return c.Conns
}

// bound is the longest the run may take, ramps and drains included.
func (c Config) bound() time.Duration {
	b := 2*c.RampTimeout + c.Duration + c.Hold + 30*time.Second
	if c.Sweep {
		b += maxSweep
	}
	return b
}

// maxSweep bounds HoldLoad's sweep.
const maxSweep = 3 * time.Minute

// pubLoops is how many loops HoldLoad's publishers are spread over: a few, so
// that only those loops wake every millisecond to pace.
func (c Config) pubLoops() int { return max(1, min(c.Loops, 4, c.Pairs)) }

// subs is how many of HoldLoad's clients are idle subscribers.
func (c Config) subs() int { return c.Conns - c.Pairs }

// maxPerLoop is the most sockets one event loop opens (see shared.loopFor).
func (c Config) maxPerLoop() int {
	if c.Scenario == FanIn && c.Loops > 1 {
		return (c.Conns + c.Loops - 2) / (c.Loops - 1)
	}
	if c.Scenario == HoldLoad {
		return (c.subs()+c.Loops-1)/c.Loops + (c.Pairs+c.pubLoops()-1)/c.pubLoops()
	}
	return (c.totalConns() + c.Loops - 1) / c.Loops
}
