// Command loadgen is an MQTT load generator for brokers on this machine. It
// runs one scenario (idle, storm, fanin, fanout, latency) against a broker
// on 127.0.0.0/8, shows live progress on stderr, and writes result.json,
// result.md (a Markdown table) and chart.png into -out.
//
// Build it with the solution tag: its packets come from the chapter 3 codec
// (floodgate/ch03-networking/03-mqtt), which is the reference codec only
// with -tags floodgate.solution (without the tag it is your own code, and a
// stub that is not done yet fails the run):
//
//	go run -tags floodgate.solution floodgate/tools/cmd/loadgen -scenario idle -conns 5000 -broker-pid $(pidof mosquitto)
//	go run -tags floodgate.solution floodgate/tools/cmd/loadgen -scenario latency -rate 20000 -duration 10s
//
// Every address must be in 127.0.0.0/8, target and sources alike; every
// count and duration has a hard maximum; the run stops by itself. With
// -broker-pid, the broker's RSS is read from /proc/PID/status before and
// after the load, and reported per connection.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"floodgate/tools/internal/load"
)

func main() {
	var c load.Config
	var scenario, out string
	var keepalive uint
	flag.StringVar(&scenario, "scenario", "idle", "idle | storm | fanin | fanout | latency")
	flag.StringVar(&c.Target, "target", "127.0.0.1:1883", "broker address (127.0.0.0/8 only)")
	flag.StringVar(&c.Sources, "sources", "127.0.1.0/24", "prefix of the source addresses (inside 127.0.0.0/8)")
	flag.IntVar(&c.SourceCount, "source-count", 0, "source addresses to use (0: 1 per 10,000 connections, at least 4)")
	flag.IntVar(&c.Conns, "conns", 0, "connections: clients (idle, storm), publishers (fanin), subscribers (fanout), pairs (latency); 0: 1000, 100 for latency")
	flag.Float64Var(&c.Rate, "rate", 0, "messages/s in total (0: fanout 100, latency 20000, fanin as fast as possible)")
	flag.DurationVar(&c.Duration, "duration", 0, "publishing time (0: 5s; at most 10m)")
	flag.DurationVar(&c.Hold, "hold", 0, "idle: hold time before reading the broker's RSS (0: 5s)")
	flag.Int64Var(&c.Messages, "messages", 0, "cap on messages published (0: 10,000,000)")
	flag.IntVar(&c.Payload, "payload", 0, "payload bytes, at least 8 (0: 64)")
	flag.IntVar(&c.Window, "window", 0, "connects in flight (0: 100; keep it at or below the broker's listen backlog)")
	flag.IntVar(&c.InFlight, "inflight", 0, "fanin at full speed: messages sent and not yet delivered, at most (0: 500)")
	flag.IntVar(&c.Loops, "loops", 0, "event loops (0: GOMAXPROCS, at most 8)")
	flag.UintVar(&keepalive, "keepalive", 0, "MQTT keepalive in seconds (0: 300)")
	flag.BoolVar(&c.PrivateFDs, "private-fds", false, "each event loop gets its own fd table (unshare(CLONE_FILES)): RLIMIT_NOFILE then caps each loop, not the process")
	flag.IntVar(&c.Protocol, "protocol", 4, "MQTT protocol level: 4 (3.1.1) or 5")
	flag.DurationVar(&c.RampTimeout, "ramp-timeout", 0, "bound on each connect ramp (0: 60s)")
	flag.IntVar(&c.BrokerPID, "broker-pid", 0, "the broker's PID, to read its RSS from /proc/PID/status")
	flag.StringVar(&c.Broker, "broker", "broker", "broker name for the report")
	flag.StringVar(&out, "out", "", "output directory (default: loadgen-out/<scenario>-<time>)")
	quiet := flag.Bool("quiet", false, "no live progress")
	flag.Parse()
	if keepalive > 65535 {
		fatal(fmt.Errorf("keepalive %d out of range", keepalive))
	}
	c.KeepAlive = uint16(keepalive)
	c.Scenario = load.Scenario(scenario)
	if !*quiet {
		c.Progress = os.Stderr
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			c.Terminal = true
		}
	}
	if out == "" {
		out = filepath.Join("loadgen-out", fmt.Sprintf("%s-%s", scenario, time.Now().Format("20060102-150405")))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := load.Run(ctx, c)
	if res != nil {
		fmt.Print(res.Markdown())
		if werr := res.Write(out); werr != nil {
			fatal(werr)
		}
		fmt.Fprintln(os.Stderr, "wrote", filepath.Join(out, "result.json"), "result.md", "chart.png")
	}
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(1)
}
