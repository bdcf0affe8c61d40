//go:build floodgate.solution

package sink_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"floodgate/capstone/ops"
	"floodgate/capstone/sink"
	breaker "floodgate/ch04-tuning/05-breaker"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// flakyWebhook is an httptest handler that answers 503 while failing is
// set, and otherwise records what it accepted.
type flakyWebhook struct {
	mu       sync.Mutex
	failing  bool
	calls    int
	accepted []sink.Record
}

func (h *flakyWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var b sink.WebhookBatch
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if h.failing {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	h.accepted = append(h.accepted, b.Records...)
	w.WriteHeader(http.StatusNoContent)
}

func (h *flakyWebhook) setFailing(v bool) {
	h.mu.Lock()
	h.failing = v
	h.mu.Unlock()
}

func (h *flakyWebhook) received() []sink.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sink.Record(nil), h.accepted...)
}

// handlerTransport serves requests in process through an httptest
// recorder, so that the whole exchange runs inside a synctest bubble.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	r.Body.Close()
	return rec.Result(), nil
}

// rec makes producer p's record number i: payload = p, i.
func rec(p, i int) sink.Record {
	b := make([]byte, 9)
	b[0] = byte(p)
	binary.BigEndian.PutUint64(b[1:], uint64(i))
	return sink.Record{Time: time.Now(), Topic: "plant/line1/events", QoS: 1, Payload: b}
}

// TestOutageUnderLoadLosesNothing: four producers submit 6,000 records over
// three seconds (fake time) while the webhook fails from 0.5s to 1.7s. The
// breaker opens, a probe fails, a later probe succeeds and the spool
// drains. Every accepted record reaches the webhook exactly once and in
// each producer's order.
func TestOutageUnderLoadLosesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hook := &flakyWebhook{}
		wh, err := sink.NewWebhook(sink.WebhookConfig{URL: "http://webhook.test/ingest",
			Client: &http.Client{Transport: handlerTransport{hook}}})
		require.NoError(t, err)
		var tmu sync.Mutex
		var transitions []string
		m := ops.NewMetrics()
		p, err := sink.New(sink.Config{
			Filters: []string{"plant/#"}, QueueSize: 64, BatchSize: 16,
			SpoolDir: t.TempDir(), SegmentBytes: 4096, RetryInterval: 100 * time.Millisecond,
			Breaker: breaker.Config{ConsecutiveFailures: 3, OpenTimeout: 300 * time.Millisecond,
				OnStateChange: func(_ string, from, to breaker.State) {
					tmu.Lock()
					transitions = append(transitions, from.String()+">"+to.String())
					tmu.Unlock()
				}},
			Metrics: m,
		}, wh)
		require.NoError(t, err)
		require.True(t, p.Match("plant/line1/events"))
		require.False(t, p.Match("office/x"))

		ctx, cancel := context.WithCancel(t.Context())
		runErr := make(chan error, 1)
		go func() { runErr <- p.Run(ctx) }()

		mid := make(chan sink.Stats, 1)
		go func() {
			time.Sleep(500 * time.Millisecond)
			hook.setFailing(true)
			time.Sleep(1200 * time.Millisecond)
			mid <- p.Stats() // the last moment of the outage
			hook.setFailing(false)
		}()
		const producers, perProducer = 4, 1500
		accepted := make([][]int, producers)
		var wg sync.WaitGroup
		for pr := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perProducer {
					err := p.Submit(rec(pr, i))
					if err == nil {
						accepted[pr] = append(accepted[pr], i)
					} else if !errors.Is(err, sink.ErrFull) {
						t.Errorf("submit: %v", err)
						return
					}
					if i%10 == 9 {
						time.Sleep(20 * time.Millisecond)
					}
				}
			}()
		}
		wg.Wait()
		total := 0
		for _, a := range accepted {
			total += len(a)
		}
		for deadline := time.Now().Add(time.Minute); len(hook.received()) < total && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		require.NoError(t, <-runErr)
		st := p.Stats()
		require.NoError(t, p.Close())

		got := make([][]int, producers)
		for _, r := range hook.received() {
			got[r.Payload[0]] = append(got[r.Payload[0]], int(binary.BigEndian.Uint64(r.Payload[1:])))
		}
		for pr := range producers {
			assert.Equal(t, accepted[pr], got[pr], "producer %d: every accepted record, once, in order", pr)
		}
		assert.Equal(t, uint64(total), st.Accepted)
		assert.Equal(t, uint64(total), st.Delivered)
		assert.Zero(t, st.Rejected, "the spool is large enough: nothing refused")
		assert.Greater(t, st.Spilled, uint64(100), "records went through the spool")
		assert.Greater(t, st.Failures, uint64(3))
		assert.Zero(t, st.SpoolDepth)
		assert.Zero(t, st.QueueDepth)
		assert.Equal(t, breaker.Closed, st.State)
		assert.Equal(t, producers*perProducer, total)
		during := <-mid
		t.Logf("at the end of the outage: %+v", during)
		assert.Greater(t, during.SpoolDepth, 500, "records waited in the spool")
		assert.NotEqual(t, breaker.Closed, during.State)
		t.Logf("after the drain: %+v; webhook calls %d; transitions %v", st, hook.calls, transitions)
		tmu.Lock()
		assert.Contains(t, transitions, "closed>open")
		assert.Contains(t, transitions, "half-open>open", "a probe during the outage failed")
		assert.Equal(t, "half-open>closed", transitions[len(transitions)-1])
		tmu.Unlock()
		assert.Equal(t, float64(total), testutil.ToFloat64(m.SinkRecords.WithLabelValues("delivered")))
		assert.Equal(t, 0.0, testutil.ToFloat64(m.SinkSpillDepth))
		assert.Equal(t, float64(ops.BreakerClosed), testutil.ToFloat64(m.BreakerState.WithLabelValues("sink")))
	})
}

// failingSink fails every Write.
type failingSink struct{}

func (failingSink) Write(context.Context, []sink.Record) error { return errors.New("down") }
func (failingSink) Close() error                               { return nil }

// memorySink records what it accepted.
type memorySink struct {
	mu   sync.Mutex
	recs []sink.Record
}

func (s *memorySink) Write(_ context.Context, r []sink.Record) error {
	s.mu.Lock()
	s.recs = append(s.recs, r...)
	s.mu.Unlock()
	return nil
}
func (s *memorySink) Close() error { return nil }
func (s *memorySink) got() []sink.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sink.Record(nil), s.recs...)
}

// TestRestartResumesSpool: records accepted while the sink is down, some
// still in memory at Close, are delivered in order by the next pipeline on
// the same spool directory.
func TestRestartResumesSpool(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		cfg := sink.Config{QueueSize: 8, BatchSize: 4, SpoolDir: dir, RetryInterval: 50 * time.Millisecond,
			Breaker: breaker.Config{ConsecutiveFailures: 2, OpenTimeout: time.Hour}}
		p, err := sink.New(cfg, failingSink{})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		var want []sink.Record
		for i := range 40 {
			r := rec(0, i)
			require.NoError(t, p.Submit(r))
			want = append(want, r)
			if i == 20 {
				time.Sleep(time.Second) // the breaker opens
			}
		}
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, p.Close())
		require.ErrorIs(t, p.Submit(rec(0, 99)), sink.ErrClosed)

		ms := &memorySink{}
		p, err = sink.New(cfg, ms)
		require.NoError(t, err)
		assert.Equal(t, 40, p.Stats().SpoolDepth)
		ctx, cancel = context.WithCancel(t.Context())
		go func() { done <- p.Run(ctx) }()
		synctest.Wait()
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, p.Close())
		got := ms.got()
		require.Len(t, got, 40)
		for i := range got { // times lose their monotonic reading on disk
			assert.Equal(t, want[i].Payload, got[i].Payload)
			assert.True(t, want[i].Time.Equal(got[i].Time))
		}
	})
}

// TestSubmitFullRefusesAndCounts: with the sink down, a tiny queue and a
// tiny spool, Submit refuses with ErrFull at once and counts the drop.
func TestSubmitFullRefusesAndCounts(t *testing.T) {
	m := ops.NewMetrics()
	p, err := sink.New(sink.Config{QueueSize: 2, SpoolDir: t.TempDir(), SpoolMaxBytes: 100, Metrics: m}, failingSink{})
	require.NoError(t, err)
	defer p.Close()
	var full int
	for i := range 10 {
		if err := p.Submit(rec(0, i)); err != nil {
			require.ErrorIs(t, err, sink.ErrFull)
			full++
		}
	}
	st := p.Stats()
	assert.Equal(t, 2, st.QueueDepth)
	assert.Equal(t, 2, st.SpoolDepth, "two 50-byte frames fit in 100 bytes")
	assert.Equal(t, 6, full)
	assert.Equal(t, uint64(6), st.Rejected)
	assert.Equal(t, 6.0, testutil.ToFloat64(m.Drops.WithLabelValues(ops.DropSinkFull)))
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := sink.New(sink.Config{Filters: []string{"a/#/b"}, SpoolDir: t.TempDir()}, failingSink{})
	require.ErrorIs(t, err, sink.ErrInvalidConfig)
	_, err = sink.New(sink.Config{QueueSize: -1, SpoolDir: t.TempDir()}, failingSink{})
	require.ErrorIs(t, err, sink.ErrInvalidConfig)
	_, err = sink.New(sink.Config{SpoolDir: t.TempDir()}, nil)
	require.ErrorIs(t, err, sink.ErrInvalidConfig)
	_, err = sink.New(sink.Config{SpoolDir: t.TempDir(), Breaker: breaker.Config{FailureRatio: 2}}, failingSink{})
	require.ErrorIs(t, err, breaker.ErrInvalidConfig)
}

// TestSpoolDirLocked: a second pipeline on the same spool directory is
// refused while the first one holds it, and accepted after its Close.
func TestSpoolDirLocked(t *testing.T) {
	dir := t.TempDir()
	p, err := sink.New(sink.Config{SpoolDir: dir}, failingSink{})
	require.NoError(t, err)
	_, err = sink.New(sink.Config{SpoolDir: dir}, failingSink{})
	require.ErrorIs(t, err, sink.ErrSpoolLocked)
	assert.Contains(t, err.Error(), dir)
	require.NoError(t, p.Close())
	p, err = sink.New(sink.Config{SpoolDir: dir}, failingSink{})
	require.NoError(t, err)
	require.NoError(t, p.Close())
}

// pickyWebhook answers 400 to any batch holding a record whose payload
// starts with "bad", and takes the others.
type pickyWebhook struct{ flakyWebhook }

func (h *pickyWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var b sink.WebhookBatch
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	for _, rec := range b.Records {
		if strings.HasPrefix(string(rec.Payload), "bad") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
	}
	h.mu.Lock()
	h.accepted = append(h.accepted, b.Records...)
	h.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// TestPermanentRefusalGoesToDeadLetter: a batch the webhook refuses with
// 400 moves to the dead-letter log, the records behind it flow on, and the
// breaker stays closed.
func TestPermanentRefusalGoesToDeadLetter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hook := &pickyWebhook{}
		wh, err := sink.NewWebhook(sink.WebhookConfig{URL: "http://webhook.test/", Client: &http.Client{Transport: handlerTransport{hook}}})
		require.NoError(t, err)
		dir := t.TempDir()
		m := ops.NewMetrics()
		p, err := sink.New(sink.Config{SpoolDir: dir, BatchSize: 1, Metrics: m}, wh)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		payloads := []string{"a", "b", "bad one", "c", "bad two", "d"}
		for _, pl := range payloads {
			require.NoError(t, p.Submit(sink.Record{Topic: "t", Payload: []byte(pl)}))
		}
		synctest.Wait()
		cancel()
		require.NoError(t, <-done)
		st := p.Stats()
		require.NoError(t, p.Close())

		var got []string
		for _, r := range hook.received() {
			got = append(got, string(r.Payload))
		}
		assert.Equal(t, []string{"a", "b", "c", "d"}, got)
		dead, err := sink.ReadFile(filepath.Join(dir, "dead-letter.log"))
		require.NoError(t, err)
		require.Len(t, dead, 2)
		assert.Equal(t, "bad one", string(dead[0].Payload))
		assert.Equal(t, "bad two", string(dead[1].Payload))
		assert.Equal(t, uint64(4), st.Delivered)
		assert.Equal(t, uint64(2), st.DeadLetter)
		assert.Equal(t, breaker.Closed, st.State)
		assert.Equal(t, 2.0, testutil.ToFloat64(m.SinkRecords.WithLabelValues("dead_letter")))
	})
}
