package pprof

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// body returns n lines cycling over devices devices.
func body(n, devices int) []byte {
	var b bytes.Buffer
	for k := range n {
		fmt.Fprintf(&b, "sensor-%04d,temp,%d.5\n", k%devices, k)
	}
	return b.Bytes()
}

func post(h http.Handler, b []byte) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/ingest", bytes.NewReader(b)))
	return rec
}

func TestTask1_ParseWithoutRegexp(t *testing.T) {
	for _, c := range []struct {
		line, key string
		v         float64
	}{
		{"sensor-1,temp,21.5", "sensor-1,temp", 21.5},
		{"a,b,-3e2\r", "a,b", -300},
	} {
		key, v, err := ParseLine([]byte(c.line))
		require.NoError(t, err, c.line)
		require.Equal(t, c.key, string(key))
		require.Equal(t, c.v, v)
	}
	for _, line := range []string{"", "a,b", "a,b,c,1", ",b,1", "a,,1", "a,b,x", "a,b,"} {
		_, _, err := ParseLine([]byte(line))
		require.ErrorIs(t, err, ErrSyntax, "%q", line)
	}
	t.Run("same store as Slow", func(t *testing.T) {
		in := append(body(500, 37), "bad line\n"...)
		slow := NewSlow(nil)
		defer slow.Close()
		fast := NewIngester(Config{})
		defer fast.Close()
		require.Equal(t, "500\n", post(slow, in).Body.String())
		require.Equal(t, "500\n", post(fast, in).Body.String())
		slow.mu.Lock()
		defer slow.mu.Unlock()
		require.Len(t, fast.store.last, len(slow.last))
		for k, v := range slow.last {
			dev, metric, _ := strings.Cut(k, ",")
			got, ok := fast.Store().Last(dev, metric)
			require.True(t, ok, k)
			require.Equal(t, v, got, k)
		}
	})
	t.Run("no allocation per line", func(t *testing.T) {
		line := []byte("sensor-0042,temp,21.5")
		var v float64
		require.Zero(t, testing.AllocsPerRun(1000, func() { _, v, _ = ParseLine(line) }))
		require.Equal(t, 21.5, v)
		fast := NewIngester(Config{})
		defer fast.Close()
		in := body(1000, 50)
		fast.ingest(in) // first sight of the 50 keys allocates them
		var rec AuditRecord
		allocs := testing.AllocsPerRun(20, func() { rec = fast.ingest(in) })
		require.Equal(t, 1000, rec.Lines)
		require.Zero(t, allocs, "1000 lines of known devices")
	})
}

// bubbleGoroutines counts the goroutines of the calling synctest bubble
// (and of any other bubble), so goroutines that other tests leave behind
// do not count.
func bubbleGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), ", synctest bubble ")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// gate is an audit log whose writes wait until it is opened.
type gate struct {
	open   chan struct{}
	mu     sync.Mutex
	writes int
}

func (g *gate) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	g.writes++
	return len(p), nil
}

func TestTask2_NoGoroutinePerRequest(t *testing.T) {
	t.Run("the fixed handler sheds audit records when the log is slow", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			log := &gate{open: make(chan struct{})}
			in := NewIngester(Config{AuditLog: log, AuditQueue: 4})
			var once sync.Once
			release := func() { once.Do(func() { close(log.open) }) }
			defer func() { release(); in.Close() }() // also when an assertion fails
			before := bubbleGoroutines()
			for range 100 {
				require.Equal(t, "3\n", post(in, body(3, 3)).Body.String())
				synctest.Wait() // let the auditor take what it can
			}
			require.Equal(t, before, bubbleGoroutines(), "no goroutine per request")
			// One record is in the auditor's hands, four wait in the queue.
			require.EqualValues(t, 95, in.Dropped())
			release()
			require.NoError(t, in.Close())
			require.Equal(t, 5, log.writes)
		})
	})
	t.Run("the slow handler piles up goroutines", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			log := &gate{open: make(chan struct{})}
			slow := NewSlow(log)
			defer func() { close(log.open); slow.Close() }()
			before := bubbleGoroutines()
			for range 100 {
				post(slow, body(3, 3))
			}
			synctest.Wait()
			piled := bubbleGoroutines() - before
			t.Logf("Slow: %d goroutines parked after 100 requests", piled)
			require.Equal(t, 99, piled, "the auditor holds one record; 99 senders wait")
		})
	})
}

func TestTask3_PprofOnLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "[::]:6060", "192.168.1.5:6060", "10.0.0.1:0"} {
		p, err := ListenPprof(addr)
		require.ErrorIs(t, err, ErrNotLoopback, addr)
		require.Nil(t, p)
	}
	_, err := ListenPprof("127.0.0.1") // no port
	require.Error(t, err)

	p, err := ListenPprof("127.0.0.1:0")
	require.NoError(t, err)
	defer p.Close()
	require.True(t, strings.HasPrefix(p.Addr(), "127.0.0.1:"), p.Addr())
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) string {
		resp, err := client.Get("http://" + p.Addr() + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	require.Contains(t, get("/debug/pprof/"), "goroutine")
	require.Contains(t, get("/debug/pprof/goroutine?debug=1"), "goroutine profile:")
	client.CloseIdleConnections()
	require.NoError(t, p.Close())
}

// TestDefaultServeMuxGotcha shows why the debug server has a mux of its
// own: importing net/http/pprof registered its handlers on the default one.
func TestDefaultServeMuxGotcha(t *testing.T) {
	_, pattern := http.DefaultServeMux.Handler(httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil))
	require.Equal(t, "GET /debug/pprof/", pattern)
}
