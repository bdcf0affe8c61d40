package bridge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// This file is given: configuration, the two MQTT clients and Run, which
// wires them to the spool. Accepting (a message into the spool) and
// forwarding (from the spool upstream) are yours, in bridge.go.

// Bridge forwards Config.Topics from the local broker to the upstream one
// through a spool. Create it with New and start it with Run.
type Bridge struct {
	cfg Config       // with defaults filled in; read-only after New
	log *slog.Logger // never nil

	accepted, forwarded, dropped atomic.Uint64 // see Stats
}

// New validates cfg and fills in its defaults. It returns ErrBadConfig when
// a required field is missing. log may be nil, to log nothing.
func New(cfg Config, log *slog.Logger) (*Bridge, error) {
	switch {
	case cfg.Local == "" || cfg.Upstream == "":
		return nil, fmt.Errorf("bridge: new: Local and Upstream are required: %w", ErrBadConfig)
	case len(cfg.Topics) == 0:
		return nil, fmt.Errorf("bridge: new: no Topics to forward: %w", ErrBadConfig)
	case cfg.SpoolDir == "":
		return nil, fmt.Errorf("bridge: new: SpoolDir is required: %w", ErrBadConfig)
	case cfg.RetryInterval < 0 || cfg.PublishTimeout < 0:
		return nil, fmt.Errorf("bridge: new: negative interval: %w", ErrBadConfig)
	}
	for _, t := range cfg.Topics {
		if t == "" {
			return nil, fmt.Errorf("bridge: new: empty topic filter: %w", ErrBadConfig)
		}
	}
	cfg.Topics = append([]string(nil), cfg.Topics...) // never share the caller's slice
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Bridge{cfg: cfg, log: log}, nil
}

// Stats returns the bridge's counters. It is safe to call at any time.
func (b *Bridge) Stats() Stats {
	return Stats{Accepted: b.accepted.Load(), Forwarded: b.forwarded.Load(), Dropped: b.dropped.Load()}
}

// Run opens the spool, connects to both brokers (retrying every
// RetryInterval while one cannot be reached) and forwards until ctx is done.
// It returns nil after ctx is done, or the first error of the spool (a full
// disk, say), after which nothing more is accepted.
func (b *Bridge) Run(ctx context.Context) error {
	sp, err := OpenSpool(b.cfg.SpoolDir)
	if err != nil {
		return err
	}
	defer func() { _ = sp.Close() }()
	if n := sp.Truncated(); n > 0 {
		b.log.Warn("spool: cut off a torn or damaged tail", "bytes", n)
	}
	b.log.Info("spool opened", "dir", b.cfg.SpoolDir, "pending_bytes", sp.Pending())

	fatal := make(chan error, 1) // the first error of accept
	handler := func(_ mqtt.Client, m mqtt.Message) {
		if err := b.accept(sp, m); err != nil {
			select {
			case fatal <- err:
			default:
			}
		}
	}
	up := mqtt.NewClient(b.upstreamOptions())
	up.Connect() // with ConnectRetry, it keeps trying in the background
	defer up.Disconnect(250)
	local := mqtt.NewClient(b.localOptions(handler))
	local.Connect()

	fctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- b.forward(fctx, sp, up) }()

	select {
	case <-ctx.Done():
	case err = <-fatal:
	case err = <-done:
		done <- err // so that the receive below does not block
	}
	// Stop accepting first: a message in flight stays the local broker's.
	local.Disconnect(250)
	stop()
	if ferr := <-done; err == nil && ctx.Err() == nil {
		err = ferr
	}
	return err
}

func (b *Bridge) localOptions(handler mqtt.MessageHandler) *mqtt.ClientOptions {
	o := b.common("tcp://"+b.cfg.Local, b.cfg.ClientID)
	// We send each PUBACK ourselves, once the message is on disk.
	o.SetAutoAckDisabled(true)
	// One message at a time, in order: the spool keeps the broker's order.
	o.SetOrderMatters(true)
	// After a restart the broker sends the session's queued messages right
	// after CONNACK, before any SUBSCRIBE of ours: they land here.
	o.SetDefaultPublishHandler(handler)
	o.SetOnConnectHandler(func(c mqtt.Client) {
		filters := make(map[string]byte, len(b.cfg.Topics))
		for _, t := range b.cfg.Topics {
			filters[t] = 1
		}
		tok := c.SubscribeMultiple(filters, handler)
		if !tok.WaitTimeout(b.cfg.PublishTimeout) || tok.Error() != nil {
			b.log.Error("local broker: subscribe failed", "topics", b.cfg.Topics, "err", tok.Error())
			return
		}
		b.log.Info("local broker: subscribed", "topics", b.cfg.Topics)
	})
	return o
}

func (b *Bridge) upstreamOptions() *mqtt.ClientOptions {
	o := b.common("tcp://"+b.cfg.Upstream, b.cfg.ClientID+"-up")
	o.SetOnConnectHandler(func(mqtt.Client) { b.log.Info("upstream: connected", "addr", b.cfg.Upstream) })
	return o
}

// common sets what both clients share: a persistent session (so that no
// QoS 1 message of ours is dropped by a broker across a reconnect) and
// retrying at a fixed interval, from the first connect on.
func (b *Bridge) common(broker, id string) *mqtt.ClientOptions {
	addr := broker[len("tcp://"):]
	return mqtt.NewClientOptions().
		AddBroker(broker).
		SetClientID(id).
		SetCleanSession(false).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(b.cfg.PublishTimeout).
		SetConnectRetry(true).
		SetConnectRetryInterval(b.cfg.RetryInterval).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(b.cfg.RetryInterval).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			b.log.Warn("connection lost", "broker", addr, "err", err)
		})
}
