package pipeline

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
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

// patience is how long, in the bubble's fake time, a test waits for an
// event before it decides that none is coming. It costs no real time.
const patience = time.Minute

// recv returns the next event from out, or false if out is closed or
// nothing arrives within patience.
func recv(out <-chan Event) (Event, bool) {
	select {
	case ev, ok := <-out:
		return ev, ok
	case <-time.After(patience):
		return Event{}, false
	}
}

// drain reads out until it is closed (closed == true) or goes quiet.
func drain(out <-chan Event) (evs []Event, closed bool) {
	for {
		select {
		case ev, ok := <-out:
			if !ok {
				return evs, true
			}
			evs = append(evs, ev)
		case <-time.After(patience):
			return evs, false
		}
	}
}

// closeAndDrain runs Close while reading Out, as a consumer must.
func closeAndDrain(t *testing.T, p *Pipeline) ([]Event, bool, error) {
	errc := make(chan error, 1)
	go func() { errc <- safeClose(p, context.Background()) }()
	evs, closed := drain(p.Out())
	select {
	case err := <-errc:
		return evs, closed, err
	case <-time.After(patience):
		t.Error("Close did not return")
		return evs, closed, nil
	}
}

// safeClose turns a panic in Close (closing a channel twice, say) into an
// error, so that one broken task fails its test instead of the whole run.
func safeClose(p *Pipeline, ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("Close panicked: %v", r)
		}
	}()
	return p.Close(ctx)
}

type shutdown struct {
	evs    []Event
	closed bool
	err    error
}

// newPipeline returns a pipeline and its shutdown: Close with Out drained,
// run once, by the test or else when the test ends. Even a failing test
// thus stops every goroutine it started, and reports instead of
// deadlocking its bubble.
func newPipeline(t *testing.T, cfg Config) (*Pipeline, func() shutdown) {
	p, err := New(cfg)
	require.NoError(t, err)
	stop := sync.OnceValue(func() shutdown {
		evs, closed, err := closeAndDrain(t, p)
		return shutdown{evs, closed, err}
	})
	t.Cleanup(func() { stop() })
	return p, stop
}

func seqs(evs []Event) []uint64 {
	var s []uint64
	for _, ev := range evs {
		s = append(s, ev.Seq)
	}
	return s
}

func TestTask1_FanIn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, stop := newPipeline(t, Config{})

		const devices, each = 3, 5
		for d := range devices {
			src, err := p.AddSource(fmt.Sprintf("dev-%d", d))
			require.NoError(t, err)
			for i := range each {
				require.NoError(t, src.Send(t.Context(), Event{Device: src.Name(), Seq: uint64(i)}))
			}
		}
		_, err := p.AddSource("dev-0")
		require.ErrorIs(t, err, ErrDuplicateSource)

		perDevice := map[string][]uint64{}
		for range devices * each {
			ev, ok := recv(p.Out())
			require.True(t, ok, "expected %d events on Out", devices*each)
			perDevice[ev.Device] = append(perDevice[ev.Device], ev.Seq)
		}
		require.Len(t, perDevice, devices)
		for dev, got := range perDevice {
			assert.Equal(t, []uint64{0, 1, 2, 3, 4}, got, "order of %s", dev)
		}
		assert.EqualValues(t, devices*each, p.Stats().Accepted)
		synctest.Wait()
		assert.EqualValues(t, devices*each, p.Stats().Delivered)
		end := stop()
		require.NoError(t, end.err)
		assert.True(t, end.closed, "Close closes Out")
	})
}

func TestTask2_BlockAppliesBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, stop := newPipeline(t, Config{Buffer: 2, Policy: Block})
		src, err := p.AddSource("meter")
		require.NoError(t, err)

		// Event 0 is taken by the forwarder, which then waits on Out;
		// events 1 and 2 fill the queue.
		require.NoError(t, src.Send(t.Context(), Event{Seq: 0}))
		synctest.Wait()
		require.NoError(t, src.Send(t.Context(), Event{Seq: 1}))
		require.NoError(t, src.Send(t.Context(), Event{Seq: 2}))

		// A fourth send must wait for the consumer.
		sent := make(chan error, 1)
		go func() { sent <- src.Send(t.Context(), Event{Seq: 3}) }()
		synctest.Wait()
		select {
		case err := <-sent:
			t.Fatalf("Send returned %v while the queue was full; it must block", err)
		default:
		}
		ev, ok := recv(p.Out()) // the consumer takes one: room again
		require.True(t, ok)
		assert.EqualValues(t, 0, ev.Seq)
		synctest.Wait()
		select {
		case err := <-sent:
			require.NoError(t, err)
		default:
			t.Fatal("Send still blocked after the consumer made room")
		}

		// With the queue full again, the sender's context decides.
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		start := time.Now()
		timed := make(chan error, 1)
		go func() { timed <- src.Send(ctx, Event{Seq: 4}) }()
		select {
		case err := <-timed:
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Equal(t, 5*time.Second, time.Since(start), "Send waits exactly until the deadline")
		case <-time.After(patience):
			t.Fatal("Send ignored its context's deadline") // the shutdown frees it
		}

		end := stop()
		require.NoError(t, end.err)
		assert.True(t, end.closed)
		assert.Equal(t, []uint64{1, 2, 3}, seqs(end.evs))
		assert.Equal(t, Stats{Accepted: 4, Delivered: 4}, p.Stats())
	})
}

func TestTask3_DropPolicies(t *testing.T) {
	cases := []struct {
		policy  Policy
		want    []uint64
		stats   Stats
		dropErr bool
	}{
		{DropNewest, []uint64{0, 1, 2, 3, 4}, Stats{Accepted: 5, Delivered: 5, DroppedNewest: 5}, true},
		{DropOldest, []uint64{0, 6, 7, 8, 9}, Stats{Accepted: 10, Delivered: 5, DroppedOldest: 5}, false},
	}
	for _, c := range cases {
		t.Run(c.policy.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, stop := newPipeline(t, Config{Buffer: 4, Policy: c.policy})
				src, err := p.AddSource("meter")
				require.NoError(t, err)
				require.NoError(t, src.Send(t.Context(), Event{Seq: 0}))
				synctest.Wait() // the forwarder holds event 0
				dropped := 0
				for i := uint64(1); i < 10; i++ {
					done := make(chan error, 1)
					go func() { done <- src.Send(t.Context(), Event{Seq: i}) }()
					synctest.Wait()
					select {
					case err := <-done:
						if errors.Is(err, ErrDropped) {
							dropped++
						} else {
							require.NoError(t, err)
						}
					default:
						// Fatal is safe: the shutdown drains Out, which frees the sender.
						t.Fatalf("%v: Send %d blocked; drop policies never wait", c.policy, i)
					}
				}
				if c.dropErr {
					assert.Equal(t, 5, dropped, "DropNewest returns ErrDropped for each dropped event")
				} else {
					assert.Zero(t, dropped, "DropOldest accepts every new event")
				}
				end := stop()
				require.NoError(t, end.err)
				assert.True(t, end.closed)
				assert.Equal(t, c.want, seqs(end.evs))
				assert.Equal(t, c.stats, p.Stats())
			})
		})
	}
}

func TestTask4_OrderlyClose(t *testing.T) {
	t.Run("delivers everything queued and stops every goroutine", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p, stop := newPipeline(t, Config{Buffer: 8})
			for d := range 4 {
				src, err := p.AddSource(fmt.Sprint("dev-", d))
				require.NoError(t, err)
				for i := range 8 {
					require.NoError(t, src.Send(t.Context(), Event{Seq: uint64(i)}))
				}
			}
			// A device blocked on a full queue is released by Close.
			src, err := p.AddSource("slow")
			require.NoError(t, err)
			blocked := make(chan error, 1)
			go func() {
				for i := 0; ; i++ {
					if err := src.Send(t.Context(), Event{Seq: uint64(i)}); err != nil {
						blocked <- err
						return
					}
				}
			}()
			synctest.Wait()

			end := stop()
			require.NoError(t, end.err)
			assert.True(t, end.closed, "Out is closed once everything is delivered")
			require.ErrorIs(t, <-blocked, ErrClosed)
			st := p.Stats()
			assert.Equal(t, st.Accepted, st.Delivered, "nothing queued is lost")
			assert.Len(t, end.evs, int(st.Delivered))
			assert.GreaterOrEqual(t, len(end.evs), 4*8+8)

			_, err = p.AddSource("late")
			require.ErrorIs(t, err, ErrClosed)
			require.ErrorIs(t, src.Send(t.Context(), Event{}), ErrClosed)
			require.NoError(t, safeClose(p, context.Background()), "Close twice is fine")

			synctest.Wait()
			assert.Zero(t, running("pipeline.(*Pipeline).forward"), "no goroutine left behind")
		})
	})
	t.Run("discards when the consumer is gone", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p, err := New(Config{Buffer: 4})
			require.NoError(t, err)
			src, err := p.AddSource("meter")
			require.NoError(t, err)
			for i := range 5 { // one held by the forwarder, four queued
				require.NoError(t, src.Send(t.Context(), Event{Seq: uint64(i)}))
				synctest.Wait()
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			closed := make(chan error, 1)
			go func() { closed <- safeClose(p, ctx) }() // nobody reads Out
			select {
			case err := <-closed:
				require.ErrorIs(t, err, context.DeadlineExceeded)
			case <-time.After(patience):
				t.Error("Close waited for a consumer that never came; it must give up at its deadline")
				drain(p.Out()) // let it finish, so that the test can end
				<-closed
				return
			}
			_, ok := recv(p.Out())
			assert.False(t, ok, "Out is closed even when Close gives up")
			assert.Equal(t, Stats{Accepted: 5, Discarded: 5}, p.Stats())
		})
	})
}
func TestNewRejectsBadConfig(t *testing.T) {
	_, err := New(Config{Buffer: -1})
	require.ErrorIs(t, err, ErrBadConfig)
	_, err = New(Config{Policy: Policy(9)})
	require.ErrorIs(t, err, ErrBadConfig)
}
