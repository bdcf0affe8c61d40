//go:build floodgate.solution

package multiplex

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Watch is a keepalive watchdog. Every value received on activity proves
// the device alive and restarts the clock. It returns an error wrapping
// ErrKeepAliveExpired once Grace(keepAlive) passes with no activity, nil
// when activity is closed, and an error wrapping ctx.Err() when ctx ends.
// A keepAlive of zero turns the clock off.
func Watch(ctx context.Context, keepAlive time.Duration, activity <-chan struct{}) error {
	grace := Grace(keepAlive)
	var t *time.Timer
	var expired <-chan time.Time // stays nil, never ready, when the watchdog is off
	if grace > 0 {
		t = time.NewTimer(grace)
		defer t.Stop()
		expired = t.C
	}
	for {
		select {
		case _, ok := <-activity:
			if !ok {
				return nil
			}
			if t != nil {
				t.Reset(grace) // Go 1.23+: no need to drain t.C first
			}
		case <-expired:
			return fmt.Errorf("watch: silent for %v: %w", grace, ErrKeepAliveExpired)
		case <-ctx.Done():
			return fmt.Errorf("watch: %w", ctx.Err())
		}
	}
}

// Heartbeat is the device's sending loop. It forwards every packet from
// data to out, and sends a PingReq to out whenever keepAlive has passed
// since the last packet it sent, so that an idle device is still heard from
// and a busy one sends no extra pings. It returns nil when data is closed
// and an error wrapping ctx.Err() when ctx ends, even while blocked on out.
func Heartbeat(ctx context.Context, keepAlive time.Duration, data <-chan Packet, out chan<- Packet) error {
	t := time.NewTimer(keepAlive)
	defer t.Stop()
	for {
		var p Packet
		select {
		case d, ok := <-data:
			if !ok {
				return nil
			}
			p = d
		case <-t.C:
			p = Packet{Kind: PingReq}
		case <-ctx.Done():
			return fmt.Errorf("heartbeat: %w", ctx.Err())
		}
		select {
		case out <- p:
			t.Reset(keepAlive) // the clock counts from the last packet sent
		case <-ctx.Done():
			return fmt.Errorf("heartbeat: %w", ctx.Err())
		}
	}
}

// Prioritize forwards packets from control and data to out. Whenever a
// control packet is waiting it goes before any data packet, and each
// channel's own order is kept. It returns nil once both inputs are closed
// and an error wrapping ctx.Err() when ctx ends.
func Prioritize(ctx context.Context, control, data <-chan Packet, out chan<- Packet) error {
	for control != nil || data != nil {
		var p Packet
		var ok bool
		// First look at control alone, without blocking.
		select {
		case p, ok = <-control:
			if !ok {
				control = nil // a nil channel is never ready: drop the case
				continue
			}
		default:
			// Nothing waiting on control: wait for either.
			select {
			case p, ok = <-control:
				if !ok {
					control = nil
					continue
				}
			case p, ok = <-data:
				if !ok {
					data = nil
					continue
				}
			case <-ctx.Done():
				return fmt.Errorf("prioritize: %w", ctx.Err())
			}
		}
		select {
		case out <- p:
		case <-ctx.Done():
			return fmt.Errorf("prioritize: %w", ctx.Err())
		}
	}
	return nil
}

// Serve is the server's side of one device session. It answers each
// PingReq from in with a PingResp on out, and runs Watch on the traffic
// from in. It returns nil when in is closed, an error wrapping
// ErrKeepAliveExpired when the device goes silent, and an error wrapping
// ctx.Err() when ctx ends. No goroutine it started is running when it
// returns.
func Serve(ctx context.Context, keepAlive time.Duration, in <-chan Packet, out chan<- Packet) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	activity := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := Watch(ctx, keepAlive, activity); err != nil {
			cancel(err) // the watchdog's verdict becomes the session's cause
		}
	}()
	defer wg.Wait()
	defer close(activity) // runs first: ends Watch if it is still waiting

	for {
		select {
		case p, ok := <-in:
			if !ok {
				return nil
			}
			select {
			case activity <- struct{}{}:
			case <-ctx.Done():
				return fmt.Errorf("serve: %w", context.Cause(ctx))
			}
			if p.Kind != PingReq {
				continue
			}
			select {
			case out <- Packet{Kind: PingResp, Seq: p.Seq}:
			case <-ctx.Done():
				return fmt.Errorf("serve: %w", context.Cause(ctx))
			}
		case <-ctx.Done():
			return fmt.Errorf("serve: %w", context.Cause(ctx))
		}
	}
}
