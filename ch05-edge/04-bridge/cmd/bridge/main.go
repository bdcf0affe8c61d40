// Command bridge forwards MQTT topics from a local broker to an upstream one,
// spooling to disk while the upstream cannot be reached.
//
//	go run -tags floodgate.solution ./ch05-edge/04-bridge/cmd/bridge \
//	    -local 127.0.0.1:1883 -upstream cloud.example:1883 \
//	    -topics 'sensors/#,alarms/#' -spool /var/lib/floodgate/spool
//
// It stops on SIGINT or SIGTERM. Killed any other way (SIGKILL, a power
// cut), it loses nothing it had acknowledged: see package bridge.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	bridge "floodgate/ch05-edge/04-bridge"
)

func main() {
	var cfg bridge.Config
	var topics string
	flag.StringVar(&cfg.Local, "local", "127.0.0.1:1883", "local broker, host:port")
	flag.StringVar(&cfg.Upstream, "upstream", "", "upstream broker, host:port")
	flag.StringVar(&topics, "topics", "#", "comma-separated topic filters to forward")
	flag.StringVar(&cfg.SpoolDir, "spool", "", "spool directory")
	flag.StringVar(&cfg.ClientID, "client-id", bridge.DefaultClientID, "client ID on the local broker; keep it across restarts")
	flag.DurationVar(&cfg.RetryInterval, "retry", bridge.DefaultRetryInterval, "wait between connection and publish attempts")
	flag.Parse()
	for t := range strings.SplitSeq(topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.Topics = append(cfg.Topics, t)
		}
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	b, err := bridge.New(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bridge:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	err = b.Run(ctx)
	st := b.Stats()
	log.Info("stopped", "accepted", st.Accepted, "forwarded", st.Forwarded, "dropped", st.Dropped, "uptime", time.Since(start).Round(time.Millisecond))
	if err != nil {
		log.Error("bridge failed", "err", err)
		os.Exit(1)
	}
}
