// Command floodgate runs the Floodgate MQTT broker.
//
//	go run -tags floodgate.solution ./capstone/cmd/floodgate   # make capstone
//
// Defaults: MQTT on TCP 127.0.0.1:1883, MQTT over WebSocket on
// 127.0.0.1:8083 (path /mqtt), metrics, health and the status page on
// 127.0.0.1:8080. At start-up it says which machine limits cap the number
// of connections. SIGINT or SIGTERM shuts it down gracefully: 5.0 clients
// get DISCONNECT 0x8B.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"floodgate/capstone/admission"
	"floodgate/capstone/broker"
	"floodgate/capstone/engine"
	"floodgate/capstone/listeners"
	"floodgate/capstone/ops"
	"floodgate/capstone/session"
	"floodgate/capstone/sink"
	"floodgate/capstone/store"
	auth "floodgate/ch03-networking/07-auth"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "floodgate:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("floodgate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		tcp        = fs.String("tcp", listeners.DefaultTCP, "MQTT over TCP address (\"off\" to disable)")
		ws         = fs.String("ws", listeners.DefaultWS, "MQTT over WebSocket address, path /mqtt (\"off\" to disable)")
		tlsAddr    = fs.String("tls", "", "MQTT over TLS address (needs -tls-cert and -tls-key)")
		tlsCert    = fs.String("tls-cert", "", "TLS certificate chain (PEM)")
		tlsKey     = fs.String("tls-key", "", "TLS private key (PEM)")
		tlsCA      = fs.String("tls-client-ca", "", "CA certificates for client certificates (PEM); enables mutual TLS")
		opsAddr    = fs.String("ops", ops.DefaultAddr, "metrics, health and status page address (\"off\" to disable)")
		pprof      = fs.Bool("pprof", false, "serve /debug/pprof on the ops address (loopback only)")
		passwords  = fs.String("passwords", "", "password file (user:bcrypt-hash lines); required of every client when set")
		aclFile    = fs.String("acl", "", "topic ACL file (read|write|readwrite PATTERN lines)")
		scramUsers = fs.String("scram-users", "", "SCRAM-SHA-256 users file (user:SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> lines, made by -scram-hash): MQTT 5.0 extended authentication; without -passwords, required of every client")
		scramHash  = fs.String("scram-hash", "", "print the -scram-users line for this user, with the password read from the first line of standard input, and exit")
		scramIters = fs.Int("scram-iterations", admission.MinSCRAMIterations, "PBKDF2 iterations for -scram-hash (at least 4096)")
		maxConns   = fs.Int("max-conns", 0, "connection cap (0: none)")
		acceptRate = fs.Float64("accept-rate", 0, "new connections per second (0: no limit)")
		pubRate    = fs.Float64("publish-rate", 0, "PUBLISH packets per second per client (0: no limit)")
		byteRate   = fs.Float64("byte-rate", 0, "payload bytes per second per client (0: no limit)")
		maxPacket  = fs.Int("max-packet", 0, "largest packet accepted, bytes (0: 1 MiB)")
		maxQueued  = fs.Int("max-queued", 0, "outbound queue per client, packets: a backstop behind -max-queued-bytes (0: 16384); also the QoS 1/2 messages kept beyond the in-flight window (0: 1000)")
		maxQBytes  = fs.Int("max-queued-bytes", 0, "outbound queue budget per client, bytes (encoded packets not yet written; over it the client is dropped as a slow consumer; 0: 1 MiB, -1: none)")
		storeFile  = fs.String("store", "", "bbolt file that keeps sessions, subscriptions, retained and in-flight messages across restarts (default: memory only)")
		storeQueue = fs.Int("store-queue", 0, "with -store: changes that may wait for the store's writer before new QoS 1/2 and retained publications and SUBSCRIBEs are refused (0: 8192)")
		sinkTopics = fs.String("sink-topics", "", "comma-separated topic filters whose messages go to the sink (default none: no sink)")
		sinkFile   = fs.String("sink-file", "floodgate-sink.log", "the sink's append-only log file")
		sinkHook   = fs.String("sink-webhook", "", "send sink batches to this URL instead of the file")
		sinkSpool  = fs.String("sink-spool", "", "the sink's spool directory while it is down (default under $TMPDIR)")
		logLevel   = fs.String("log-level", "info", "debug, info, warn or error")
		engineName = fs.String("engine", broker.DefaultEngine(), "connection engine for plain TCP: epoll (Linux event loops) or goroutine (one goroutine per connection, portable); TLS and WebSocket always use goroutine")
		loops      = fs.Int("epoll-loops", 0, "epoll engine: event loops (0: GOMAXPROCS, or as many as -max-conns needs with private fd tables)")
		privateFDs = fs.Bool("epoll-private-fds", false, "epoll engine: give every loop its own fd table even when -max-conns does not need it (it does by itself when -max-conns is above RLIMIT_NOFILE)")
		memLimit   = fs.String("memory-limit", "", "soft limit on the Go runtime's memory, e.g. 512MiB (runtime/debug.SetMemoryLimit): the collector runs more often near it, so the heap's headroom over many idle sessions stays small; GOGC still applies below it (default: none, or GOMEMLIMIT)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *scramHash != "" {
		return printSCRAMLine(*scramHash, *scramIters, stdout)
	}
	var memoryLimit int64
	if *memLimit != "" {
		n, err := parseMemoryLimit(*memLimit)
		if err != nil {
			return err
		}
		memoryLimit = n
	}
	for _, p := range checkParts() {
		if p.fatal {
			return fmt.Errorf("%v: finish that lab first (or run the reference: make capstone)", p)
		}
		fmt.Fprintln(stderr, "floodgate: warning:", p)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	adm := admission.Config{MaxConns: *maxConns, AcceptRate: *acceptRate, PublishRate: *pubRate, ByteRate: *byteRate}
	if *passwords != "" {
		p, err := readFile(*passwords, auth.ParsePasswords)
		if err != nil {
			return fmt.Errorf("-passwords: %w", err)
		}
		adm.Passwords = p
	}
	if *scramUsers != "" {
		u, err := readFile(*scramUsers, admission.ParseSCRAMUsers)
		if err != nil {
			return fmt.Errorf("-scram-users: %w", err)
		}
		adm.SCRAM = u
	}
	if *aclFile != "" {
		a, err := readFile(*aclFile, auth.ParseACL)
		if err != nil {
			return fmt.Errorf("-acl: %w", err)
		}
		adm.ACL = a
	}
	metrics := ops.NewMetrics()
	cfg := broker.Config{
		Session:   session.Config{MaxPacketSize: *maxPacket, MaxQueued: *maxQueued, MaxQueuedBytes: *maxQBytes},
		Admission: adm,
		Listeners: listeners.Config{TCP: *tcp, WS: *ws, TLS: *tlsAddr, Logger: log,
			TLSOptions: auth.TLSOptions{CertFile: *tlsCert, KeyFile: *tlsKey, ClientCAFile: *tlsCA}},
		Logger:  log,
		Metrics: metrics,
		Engine:  *engineName,
		Epoll:   engine.EpollConfig{Loops: *loops, PrivateFDs: *privateFDs},
	}
	if *storeFile != "" {
		st, err := store.Open(*storeFile, store.Options{Timeout: time.Second})
		if err != nil {
			return fmt.Errorf("-store: %w", err)
		}
		defer st.Close()
		cfg.Store = st
		cfg.StoreQueue = *storeQueue
	}
	var pipe *sink.Pipeline
	if *sinkTopics != "" {
		var out sink.Sink
		var err error
		if *sinkHook != "" {
			out, err = sink.NewWebhook(sink.WebhookConfig{URL: *sinkHook})
		} else {
			out, err = sink.OpenFile(sink.FileConfig{Path: *sinkFile})
		}
		if err != nil {
			return fmt.Errorf("-sink: %w", err)
		}
		pipe, err = sink.New(sink.Config{Filters: strings.Split(*sinkTopics, ","), SpoolDir: *sinkSpool,
			Metrics: metrics, Logger: log}, out)
		if err != nil {
			out.Close()
			return fmt.Errorf("-sink: %w", err)
		}
		cfg.Sink = pipe
	}
	b, err := broker.New(cfg)
	if err != nil {
		if pipe != nil {
			pipe.Close()
		}
		return err
	}
	var opsSrv *ops.Server
	if *opsAddr != listeners.Off {
		opsSrv, err = ops.NewServer(ops.ServerConfig{Addr: *opsAddr, Pprof: *pprof, Metrics: metrics, Logger: log})
		if err != nil {
			return fmt.Errorf("-ops: %w", err)
		}
	}
	var plan *engine.EpollPlan
	if *engineName == broker.EngineEpoll {
		// The engine logs its own plan once it serves; this one is
		// for the banner.
		if p, err := engine.PlanEpoll(engine.EpollConfig{Loops: *loops, PrivateFDs: *privateFDs, MaxConns: *maxConns}); err == nil {
			plan = &p
		}
	}
	for _, line := range connectionLimits(*maxConns, plan) {
		fmt.Fprintln(stdout, line)
	}
	if memoryLimit > 0 {
		debug.SetMemoryLimit(memoryLimit)
		fmt.Fprintf(stdout, "memory limit %s bytes (-memory-limit): the collector keeps the Go runtime's memory under it\n", group(memoryLimit))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var opsErr error
	if opsSrv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if opsErr = opsSrv.Run(ctx); opsErr != nil {
				cancel()
			}
		}()
	}
	var pipeErr error
	if pipe != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pipeErr = pipe.Run(ctx)
		}()
	}
	err = b.Run(ctx, func(addrs map[string]net.Addr) {
		for _, k := range []string{"tcp", "ws", "tls"} {
			if a, ok := addrs[k]; ok {
				fmt.Fprintf(stdout, "floodgate: MQTT %s on %s\n", map[string]string{"tcp": "over TCP", "ws": "over WebSocket (/mqtt)", "tls": "over TLS"}[k], a)
			}
		}
		if opsSrv != nil {
			fmt.Fprintf(stdout, "floodgate: status page http://%s/status, metrics http://%s/metrics\n", *opsAddr, *opsAddr)
		}
	})
	cancel()
	wg.Wait()
	if pipe != nil {
		if cerr := pipe.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("sink: %w", cerr)
		}
		if err == nil && pipeErr != nil {
			err = fmt.Errorf("sink: %w", pipeErr)
		}
	}
	if err == nil && opsErr != nil && !errors.Is(opsErr, context.Canceled) {
		err = opsErr
	}
	if err == nil {
		fmt.Fprintln(stdout, "floodgate: stopped at", time.Now().Format(time.TimeOnly))
	}
	return err
}

// stdin is where -scram-hash reads the password (tests replace it).
var stdin io.Reader = os.Stdin

// printSCRAMLine prints the -scram-users line for user, with the password
// read from the first line of stdin (not an argument: it would show in ps
// and in the shell's history).
func printSCRAMLine(user string, iterations int, stdout io.Writer) error {
	pw, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && pw != "") {
		return fmt.Errorf("-scram-hash: read the password from standard input: %w", err)
	}
	pw = strings.TrimRight(pw, "\r\n")
	if pw == "" {
		return errors.New("-scram-hash: empty password on standard input")
	}
	line, err := admission.HashSCRAM(user, pw, iterations)
	if err != nil {
		return fmt.Errorf("-scram-hash: %w", err)
	}
	_, err = fmt.Fprintln(stdout, line)
	return err
}

// readFile opens name and parses it with parse.
func readFile[T any](name string, parse func(io.Reader) (T, error)) (T, error) {
	f, err := os.Open(name)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	return parse(f)
}
