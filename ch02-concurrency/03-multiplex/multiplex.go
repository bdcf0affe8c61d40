//go:build !floodgate.solution

package multiplex

import (
	"context"
	"time"
)

// Watch is a keepalive watchdog. Every value received on activity proves
// the device alive and restarts the clock. It returns an error wrapping
// ErrKeepAliveExpired once Grace(keepAlive) passes with no activity, nil
// when activity is closed, and an error wrapping ctx.Err() when ctx ends.
// A keepAlive of zero turns the clock off.
func Watch(ctx context.Context, keepAlive time.Duration, activity <-chan struct{}) error {
	// TODO(Task 1): one timer of Grace(keepAlive), reset on each activity;
	// a select over activity, the timer and ctx.Done(). With keepAlive 0,
	// leave the timer's channel nil.
	return nil
}

// Heartbeat is the device's sending loop. It forwards every packet from
// data to out, and sends a PingReq to out whenever keepAlive has passed
// since the last packet it sent, so that an idle device is still heard from
// and a busy one sends no extra pings. It returns nil when data is closed
// and an error wrapping ctx.Err() when ctx ends, even while blocked on out.
func Heartbeat(ctx context.Context, keepAlive time.Duration, data <-chan Packet, out chan<- Packet) error {
	// TODO(Task 2): wait for data, the timer or ctx; then send the packet
	// (or a PingReq) on out, also watching ctx; restart the timer after
	// every packet sent.
	return nil
}

// Prioritize forwards packets from control and data to out. Whenever a
// control packet is waiting it goes before any data packet, and each
// channel's own order is kept. It returns nil once both inputs are closed
// and an error wrapping ctx.Err() when ctx ends.
func Prioritize(ctx context.Context, control, data <-chan Packet, out chan<- Packet) error {
	// TODO(Task 3): a plain select picks at random among ready cases, so
	// try control alone first (select with default), and only then wait on
	// both. Set a closed input to nil so that its case never fires again.
	return nil
}

// Serve is the server's side of one device session. It answers each
// PingReq from in with a PingResp on out, and runs Watch on the traffic
// from in. It returns nil when in is closed, an error wrapping
// ErrKeepAliveExpired when the device goes silent, and an error wrapping
// ctx.Err() when ctx ends. No goroutine it started is running when it
// returns.
func Serve(ctx context.Context, keepAlive time.Duration, in <-chan Packet, out chan<- Packet) error {
	// TODO(Task 4): derive a context with context.WithCancelCause; run
	// Watch in a goroutine you wait for, cancelling with its error; feed it
	// one activity per packet; answer PingReq; return context.Cause(ctx)
	// wrapped when the context ends.
	return nil
}
