package multiplex

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// running counts the goroutines whose stack contains frame, such as
// "pipeline.(*Pipeline).forward": a leak check that, unlike
// runtime.NumGoroutine, ignores goroutines other tests own.
func running(frame string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, frame) {
			n++
		}
	}
	return n
}

// Every test runs in a synctest bubble: time is fake and advances only when
// every goroutine in the bubble is blocked, so these waits cost no real
// time, and a stub that returns at once fails instead of hanging.
const patience = 24 * time.Hour

func send[T any](ch chan<- T, v T) bool {
	select {
	case ch <- v:
		return true
	case <-time.After(patience):
		return false
	}
}

func recv[T any](ch <-chan T) (T, bool) {
	select {
	case v, ok := <-ch:
		return v, ok
	case <-time.After(patience):
		var zero T
		return zero, false
	}
}

// result runs f in a goroutine and returns a channel with its error.
func result(f func() error) <-chan error {
	c := make(chan error, 1)
	go func() { c <- f() }()
	return c
}

func TestTask1_Watchdog(t *testing.T) {
	t.Run("expires after 1.5x keepalive of silence", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			activity := make(chan struct{})
			start := time.Now()
			done := result(func() error { return Watch(t.Context(), time.Minute, activity) })
			for _, at := range []time.Duration{30 * time.Second, 110 * time.Second} {
				time.Sleep(at - time.Since(start))
				require.True(t, send(activity, struct{}{}), "Watch stopped listening at %v", at)
			}
			err, _ := recv(done)
			require.ErrorIs(t, err, ErrKeepAliveExpired)
			assert.Equal(t, 200*time.Second, time.Since(start), "90 s after the last activity at 110 s")
		})
	})
	t.Run("closed activity means a clean end", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			activity := make(chan struct{})
			done := result(func() error { return Watch(t.Context(), time.Minute, activity) })
			time.Sleep(time.Minute)
			require.True(t, send(activity, struct{}{}))
			close(activity)
			err, ok := recv(done)
			require.True(t, ok)
			require.NoError(t, err)
		})
	})
	t.Run("context ends it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			done := result(func() error { return Watch(ctx, time.Minute, make(chan struct{})) })
			time.Sleep(10 * time.Second)
			cancel()
			err, _ := recv(done)
			require.ErrorIs(t, err, context.Canceled)
		})
	})
	t.Run("keepalive zero never expires", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 72*time.Hour)
			defer cancel()
			start := time.Now()
			err := Watch(ctx, 0, make(chan struct{}))
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Equal(t, 72*time.Hour, time.Since(start))
		})
	})
}

type stamped struct {
	at   time.Duration
	kind Kind
}

func TestTask2_Heartbeat(t *testing.T) {
	t.Run("an idle device pings every keepalive", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			out := make(chan Packet)
			start := time.Now()
			done := result(func() error { return Heartbeat(ctx, time.Minute, make(chan Packet), out) })
			var got []stamped
			for range 3 {
				p, ok := recv(out)
				require.True(t, ok, "expected a PINGREQ")
				got = append(got, stamped{time.Since(start), p.Kind})
			}
			assert.Equal(t, []stamped{{time.Minute, PingReq}, {2 * time.Minute, PingReq}, {3 * time.Minute, PingReq}}, got)
			cancel()
			err, _ := recv(done)
			require.ErrorIs(t, err, context.Canceled)
		})
	})
	t.Run("a busy device sends no extra pings", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			data := make(chan Packet, 5)
			out := make(chan Packet)
			start := time.Now()
			done := result(func() error { return Heartbeat(t.Context(), time.Minute, data, out) })
			go func() {
				for i := range 5 {
					time.Sleep(40 * time.Second)
					data <- Packet{Kind: Publish, Seq: uint64(i)}
				}
			}()
			var got []stamped
			for range 6 {
				p, ok := recv(out)
				require.True(t, ok, "expected six packets, got %v", got)
				got = append(got, stamped{time.Since(start), p.Kind})
			}
			want := []stamped{
				{40 * time.Second, Publish}, {80 * time.Second, Publish}, {120 * time.Second, Publish},
				{160 * time.Second, Publish}, {200 * time.Second, Publish},
				{260 * time.Second, PingReq}, // a keepalive after the last packet sent
			}
			assert.Equal(t, want, got)
			close(data)
			err, ok := recv(done)
			require.True(t, ok)
			require.NoError(t, err, "closing data ends Heartbeat cleanly")
		})
	})
	t.Run("context ends it while out is blocked", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
			defer cancel()
			out := make(chan Packet) // nobody reads it
			start := time.Now()
			done := result(func() error { return Heartbeat(ctx, time.Minute, make(chan Packet), out) })
			err, ok := recv(done)
			if !ok {
				t.Error("Heartbeat stayed blocked on out after its context ended")
				for range 10 { // unblock it, so that the test can end
					if _, ok := recv(out); !ok {
						break
					}
				}
				return
			}
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Equal(t, 5*time.Minute, time.Since(start))
		})
	})
}

func TestTask3_ControlBeforeData(t *testing.T) {
	t.Run("waiting control packets all go first", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			const n = 20
			control, data := make(chan Packet, n), make(chan Packet, n)
			for i := range n {
				control <- Packet{Kind: Throttle, Seq: uint64(i)}
				data <- Packet{Kind: Publish, Seq: uint64(i)}
			}
			close(control)
			close(data)
			out := make(chan Packet)
			done := result(func() error { return Prioritize(t.Context(), control, data, out) })
			var got []Packet
			for range 2 * n {
				p, ok := recv(out)
				require.True(t, ok, "expected %d packets, got %d", 2*n, len(got))
				got = append(got, p)
			}
			for i, p := range got {
				want := Packet{Kind: Throttle, Seq: uint64(i)}
				if i >= n {
					want = Packet{Kind: Publish, Seq: uint64(i - n)}
				}
				require.Equal(t, want, p, "packet %d", i)
			}
			err, ok := recv(done)
			require.True(t, ok)
			require.NoError(t, err, "both inputs closed: Prioritize returns nil")
		})
	})
	t.Run("a control packet overtakes queued data", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			control, data := make(chan Packet, 1), make(chan Packet, 10)
			for i := range 10 {
				data <- Packet{Kind: Publish, Seq: uint64(i)}
			}
			out := make(chan Packet)
			ctx, cancel := context.WithCancel(t.Context())
			done := result(func() error { return Prioritize(ctx, control, data, out) })
			for range 3 {
				_, ok := recv(out)
				require.True(t, ok)
			}
			synctest.Wait() // Prioritize now holds data packet 3, blocked on out
			control <- Packet{Kind: Disconnect}
			var kinds []Kind
			for range 2 {
				p, ok := recv(out)
				require.True(t, ok)
				kinds = append(kinds, p.Kind)
			}
			assert.Equal(t, []Kind{Publish, Disconnect}, kinds,
				"only the packet already in hand may go before the control packet")
			cancel()
			err, _ := recv(done)
			require.ErrorIs(t, err, context.Canceled)
		})
	})
}

func TestTask4_Session(t *testing.T) {
	t.Run("answers pings, then drops a silent device", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			in, out := make(chan Packet), make(chan Packet)
			start := time.Now()
			done := result(func() error { return Serve(t.Context(), time.Minute, in, out) })
			for i, at := range []time.Duration{50 * time.Second, 100 * time.Second, 150 * time.Second} {
				time.Sleep(at - time.Since(start))
				require.True(t, send(in, Packet{Kind: PingReq, Seq: uint64(i)}), "Serve stopped reading")
				p, ok := recv(out)
				require.True(t, ok, "no PINGRESP")
				assert.Equal(t, Packet{Kind: PingResp, Seq: uint64(i)}, p)
			}
			time.Sleep(200*time.Second - time.Since(start))
			require.True(t, send(in, Packet{Kind: Publish, Seq: 9}))
			err, _ := recv(done)
			require.ErrorIs(t, err, ErrKeepAliveExpired)
			assert.Equal(t, 290*time.Second, time.Since(start), "90 s after the last packet")
			synctest.Wait()
			assert.Zero(t, running("multiplex.Watch("), "no goroutine left behind")
		})
	})
	t.Run("closed input ends it cleanly", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			in := make(chan Packet)
			done := result(func() error { return Serve(t.Context(), time.Minute, in, make(chan Packet)) })
			require.True(t, send(in, Packet{Kind: Publish}))
			close(in)
			err, ok := recv(done)
			require.True(t, ok)
			require.NoError(t, err)
		})
	})
	t.Run("the caller's context ends it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			in := make(chan Packet)
			done := result(func() error { return Serve(ctx, time.Minute, in, make(chan Packet)) })
			require.True(t, send(in, Packet{Kind: Publish}))
			cancel()
			err, _ := recv(done)
			require.ErrorIs(t, err, context.Canceled)
			require.NotErrorIs(t, err, ErrKeepAliveExpired)
		})
	})
}
