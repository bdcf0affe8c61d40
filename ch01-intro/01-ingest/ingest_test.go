package ingest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTask1_ParseLine(t *testing.T) {
	valid := []struct {
		line string
		want Reading
	}{
		{"dev-1,temp,21.5", Reading{DeviceID: "dev-1", Metric: "temp", Value: 21.5}},
		{"a,b,0", Reading{DeviceID: "a", Metric: "b"}},
		{"plant.7:boiler_2,pressure,-1e3", Reading{DeviceID: "plant.7:boiler_2", Metric: "pressure", Value: -1000}},
		{"d,m,3,1700000000123", Reading{DeviceID: "d", Metric: "m", Value: 3, Time: time.UnixMilli(1700000000123).UTC()}},
		{"d,m,3,0", Reading{DeviceID: "d", Metric: "m", Value: 3, Time: time.UnixMilli(0).UTC()}},
		{strings.Repeat("x", MaxIDBytes) + ",m,1", Reading{DeviceID: strings.Repeat("x", MaxIDBytes), Metric: "m", Value: 1}},
	}
	for _, tc := range valid {
		got, err := ParseLine([]byte(tc.line))
		require.NoError(t, err, "ParseLine(%q)", tc.line)
		assert.Equal(t, tc.want, got, "ParseLine(%q)", tc.line)
	}

	invalid := []struct{ line, mentions string }{
		{"", "field"},
		{"dev-1,temp", "field"},
		{"dev-1,temp,1,2,3", "field"},
		{",temp,1", "device_id"},
		{strings.Repeat("x", MaxIDBytes+1) + ",m,1", "device_id"},
		{"dev 1,temp,1", "device_id"},
		{"dev-1,,1", "metric"},
		{"dev-1,te/mp,1", "metric"},
		{"dev-1,temp,", "value"},
		{"dev-1,temp,warm", "value"},
		{"dev-1,temp,NaN", "value"},
		{"dev-1,temp,+Inf", "value"},
		{"dev-1,temp,1e999", "value"},
		{"dev-1,temp,1,", "unix_ms"},
		{"dev-1,temp,1,-5", "unix_ms"},
		{"dev-1,temp,1,12.5", "unix_ms"},
	}
	for _, tc := range invalid {
		_, err := ParseLine([]byte(tc.line))
		require.Error(t, err, "ParseLine(%q) must fail", tc.line)
		assert.ErrorIs(t, err, ErrMalformed, "ParseLine(%q)", tc.line)
		assert.Contains(t, err.Error(), tc.mentions, "ParseLine(%q): the error should name the field at fault", tc.line)
	}
}

// newServer returns a server for cfg, failing the test if New does.
func newServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	require.NoError(t, err)
	return s
}

func TestTask2_ServeConn(t *testing.T) {
	t.Run("lines are parsed, counted and skipped", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newServer(t, Config{MaxLineBytes: 64})
			client, server := net.Pipe()
			defer client.Close()
			done := make(chan struct{})
			go func() { s.ServeConn(server); close(done) }()

			for _, line := range []string{
				"dev-1,temp,21.5\n",
				"not a reading\n",
				"dev-2,hum,40,1700000000000\r\n",
				"dev-1,temp,22\n",
				"\n",
			} {
				_, err := io.WriteString(client, line)
				require.NoError(t, err, "writing %q: the server stopped reading", line)
			}
			synctest.Wait() // the server has handled every line it could read

			st := s.Stats()
			assert.EqualValues(t, 2+1, st.Readings, "valid lines")
			assert.EqualValues(t, 2, st.Malformed, "malformed lines (the blank line counts)")
			assert.EqualValues(t, 1, st.Active, "the connection is still open")
			d, ok := s.Device("dev-1")
			require.True(t, ok, "dev-1 has sent readings")
			assert.EqualValues(t, 2, d.Readings)
			assert.Equal(t, 22.0, d.Last.Value)
			d2, ok := s.Device("dev-2")
			require.True(t, ok, "dev-2 has sent a reading ending in \\r\\n")
			assert.Equal(t, time.UnixMilli(1700000000000).UTC(), d2.Last.Time)

			require.NoError(t, client.Close())
			<-done
			assert.EqualValues(t, 0, s.Stats().Active, "a closed connection is no longer active")
		})
	})

	t.Run("an oversized line closes the connection with a reason", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newServer(t, Config{MaxLineBytes: 32})
			client, server := net.Pipe()
			defer client.Close()
			done := make(chan struct{})
			go func() { s.ServeConn(server); close(done) }()

			go io.WriteString(client, "dev-1,temp,"+strings.Repeat("9", 100)+"\n") // fails once the server hangs up
			reason, err := bufio.NewReader(client).ReadString('\n')
			require.NoError(t, err, "the server should explain before it hangs up")
			assert.Contains(t, reason, ErrLineTooLong.Error())
			<-done
			assert.EqualValues(t, 1, s.Stats().Oversized)
			assert.EqualValues(t, 0, s.Stats().Readings)
		})
	})

	t.Run("a silent peer is closed after the idle timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newServer(t, Config{IdleTimeout: time.Minute})
			client, server := net.Pipe()
			defer client.Close()
			done := make(chan struct{})
			go func() { s.ServeConn(server); close(done) }()

			_, err := io.WriteString(client, "dev-1,temp,1\n")
			require.NoError(t, err)
			time.Sleep(59 * time.Second) // the bubble's clock: no real waiting
			synctest.Wait()
			select {
			case <-done:
				t.Fatal("closed before the idle timeout")
			default:
			}
			time.Sleep(2 * time.Second)
			synctest.Wait()
			select {
			case <-done:
			default:
				t.Fatal("still open after the idle timeout")
			}
		})
	})
}

// fakeListener hands out scripted Accept errors, then connections, and
// records when each Accept was called.
type fakeListener struct {
	mu     sync.Mutex
	errs   []error
	calls  []time.Time
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newFakeListener(errs ...error) *fakeListener {
	return &fakeListener{errs: errs, conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *fakeListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls = append(l.calls, time.Now())
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *fakeListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func emfile() error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

func TestTask3_AcceptWithBackoff(t *testing.T) {
	t.Run("temporary errors are retried with a doubling, capped back-off", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newServer(t, Config{MaxAcceptBackoff: 100 * time.Millisecond})
			ln := newFakeListener(emfile(), emfile(), emfile(), emfile(), emfile(), emfile())
			serveErr := make(chan error, 1)
			defer ln.Close() // on failure too, so that Serve ends and the bubble can exit
			go func() { serveErr <- s.Serve(ln) }()
			time.Sleep(time.Second) // the bubble's clock runs through every back-off
			synctest.Wait()         // Serve is now waiting in Accept for a connection, or has returned

			select {
			case err := <-serveErr:
				t.Fatalf("Serve returned %v while the listener was still open", err)
			default:
			}
			ln.mu.Lock()
			calls := append([]time.Time(nil), ln.calls...)
			ln.mu.Unlock()
			require.Len(t, calls, 7, "six failed Accepts, then one that waits")
			var gaps []time.Duration
			for i := 1; i < len(calls); i++ {
				gaps = append(gaps, calls[i].Sub(calls[i-1]))
			}
			ms := time.Millisecond
			assert.Equal(t, []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 100 * ms}, gaps, "the waits between Accept calls")
			assert.EqualValues(t, 6, s.Stats().AcceptRetry)

			// The server still works, and each connection gets its own goroutine.
			c1, s1 := net.Pipe()
			c2, s2 := net.Pipe()
			defer c1.Close()
			defer c2.Close()
			ln.conns <- s1
			ln.conns <- s2 // accepted only if the first is served elsewhere
			for _, c := range []net.Conn{c1, c2} {
				_, err := io.WriteString(c, "dev-1,temp,1\n")
				require.NoError(t, err)
			}
			synctest.Wait()
			assert.EqualValues(t, 2, s.Stats().Readings)
			assert.EqualValues(t, 2, s.Stats().Accepted)

			ln.Close()
			err := <-serveErr
			assert.ErrorIs(t, err, net.ErrClosed, "Serve returns the listener's error when it is not shutting down")
			c1.Close()
			c2.Close()
			synctest.Wait() // the connection goroutines see EOF and end
		})
	})

	t.Run("other errors end Serve at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newServer(t, Config{})
			boom := errors.New("boom")
			err := s.Serve(newFakeListener(boom))
			assert.ErrorIs(t, err, boom)
			assert.EqualValues(t, 0, s.Stats().AcceptRetry)
		})
	})
}

func TestTask4_Shutdown(t *testing.T) {
	readings := make(chan Reading, 16)
	s := newServer(t, Config{Handle: func(r Reading) { readings <- r }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.Serve(ln) }()

	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		clients = append(clients, c)
		_, err = io.WriteString(c, "dev-"+strconv.Itoa(i)+",temp,1\ndev-"+strconv.Itoa(i)+",temp,2\n")
		require.NoError(t, err)
	}
	bound := time.NewTimer(10 * time.Second) // a bound for a broken server, not a wait
	defer bound.Stop()
	for range 6 {
		select {
		case <-readings:
		case err := <-serveErr:
			t.Fatalf("Serve returned early: %v", err)
		case <-bound.C:
			t.Fatal("the server did not handle 6 lines from 3 clients")
		}
	}
	assert.EqualValues(t, 3, s.Stats().Active)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx), "Shutdown with idle connections")
	select {
	case err := <-serveErr:
		assert.ErrorIs(t, err, ErrServerClosed)
	case <-bound.C:
		t.Fatal("Serve did not return after Shutdown")
	}
	for i, c := range clients {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Read(make([]byte, 1))
		assert.ErrorIs(t, err, io.EOF, "client %d: the server should have closed the connection", i)
	}
	assert.EqualValues(t, 0, s.Stats().Active)
	assert.EqualValues(t, 6, s.Stats().Readings, "no line that was read is lost")

	_, err = net.Dial("tcp", ln.Addr().String())
	assert.Error(t, err, "the listener is closed")
	assert.ErrorIs(t, s.Serve(newFakeListener()), ErrServerClosed, "Serve after Shutdown")
	assert.NoError(t, s.Shutdown(ctx), "a second Shutdown")
}

func FuzzParseLine(f *testing.F) {
	for _, seed := range []string{"dev-1,temp,21.5", "d,m,3,1700000000123", "a,b,c,d,e", ",,", "d,m,1e308", "d,m,0x1p-2", "d,m,1_000"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseLine(line)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseLine(%q): error %v does not wrap ErrMalformed", line, err)
			}
			return
		}
		if r.DeviceID == "" || len(r.DeviceID) > MaxIDBytes || r.Metric == "" || len(r.Metric) > MaxIDBytes {
			t.Fatalf("ParseLine(%q) accepted bad names: %+v", line, r)
		}
		if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
			t.Fatalf("ParseLine(%q) accepted a value that is not finite: %v", line, r.Value)
		}
		if strings.Count(string(line), ",") > 3 {
			t.Fatalf("ParseLine(%q) accepted more than 4 fields", line)
		}
	})
}
