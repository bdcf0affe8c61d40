package tcpscale

import (
	"context"
	"errors"
	"io"
	"net"
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

// startServe runs s.Serve(l) on a goroutine and returns a channel that
// receives its result.
func startServe(s *Server, l net.Listener) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(l) }()
	return errc
}

// echo writes msg on c and reads it back, with a deadline so that a server
// that never answers fails the test instead of hanging it.
func echo(c net.Conn, msg string) error {
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return errors.New("echo: got " + string(got) + ", want " + msg)
	}
	return nil
}

// pipeListener is a net.Listener whose connections are net.Pipe ends, so
// tests can run inside a synctest bubble with fake time. Each Accept returns
// the next scripted error, then the next connection from dial.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once

	mu     sync.Mutex
	script []error     // guarded by mu: errors returned before any conn
	calls  []time.Time // guarded by mu: when each Accept was called
}

func newPipeListener(script ...error) *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{}), script: script}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls = append(l.calls, time.Now())
	if len(l.script) > 0 {
		err := l.script[0]
		l.script = l.script[1:]
		l.mu.Unlock()
		if err != nil {
			return nil, err
		}
	} else {
		l.mu.Unlock()
	}
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func (l *pipeListener) callTimes() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.calls...)
}

// dial hands the server one end of a new pipe and returns the other. It
// fails the test if the server does not accept within a (fake) second.
func (l *pipeListener) dial(t *testing.T) net.Conn {
	t.Helper()
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client
	case <-time.After(time.Second):
		client.Close()
		server.Close()
		t.Fatal("the server did not accept a connection within a second")
		return nil
	}
}

// stop closes l, which ends Serve without needing Shutdown (Task 5), and
// waits for Serve to return. Close the clients first: their handlers end when
// their connections do.
func stop(t *testing.T, l net.Listener, errc <-chan error) {
	t.Helper()
	l.Close()
	select {
	case <-errc:
	case <-time.After(10 * time.Second):
		t.Error("Serve did not return after its listener was closed")
	}
}

// shutdown stops s and checks that Serve returned ErrServerClosed.
func shutdown(t *testing.T, s *Server, errc <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	assert.NoError(t, s.Shutdown(ctx), "Shutdown")
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, ErrServerClosed, "Serve after Shutdown")
	case <-ctx.Done():
		t.Error("Serve did not return after Shutdown")
	}
}

// maxBytesPerConn bounds the Go memory (heap + stacks) one idle connection
// may cost the server. One goroutine stack (2 KiB; 4 KiB under -race), the
// 1 KiB buffer, the net.Conn and its map entry fit with room to spare; a
// 16 KiB buffer, or a bufio.Reader and Writer of 4 KiB each, do not.
const maxBytesPerConn = 8 << 10

func TestTask1_EchoThousandsOfConnections(t *testing.T) {
	s, err := New(Config{})
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	errc := startServe(s, l)
	defer stop(t, l, errc)

	c, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	require.NoError(t, echo(c, "hello"), "echo")
	require.NoError(t, echo(c, "sensor-42 21.5C\n"), "echo")
	require.NoError(t, c.Close())

	t.Run("bytes per connection", func(t *testing.T) {
		n := ConnBudget(2000)
		if n < 200 {
			t.Skip("RLIMIT_NOFILE is too low for this test: raise it (ulimit -n 8192)")
		}
		fp, closeAll, err := MeasureConns(l.Addr().(*net.TCPAddr).Port, n)
		defer closeAll()
		require.NoError(t, err)
		require.GreaterOrEqual(t, s.Stats().Active, int64(n), "Stats().Active counts the %d open connections", n)
		t.Log(fp)
		assert.LessOrEqual(t, fp.PerConn(), int64(maxBytesPerConn), "bytes per connection")
	})
}

func TestTask2_AcceptBacksOffOnTemporaryErrors(t *testing.T) {
	t.Run("doubles, caps, resets", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, err := New(Config{BackoffMin: 5 * time.Millisecond, BackoffMax: 40 * time.Millisecond})
			require.NoError(t, err)
			emfile, enfile := error(syscall.EMFILE), error(syscall.ENFILE)
			// Five errors, a connection (nil: take one from dial), one more error.
			l := newPipeListener(emfile, emfile, enfile, emfile, emfile, nil, &net.OpError{Op: "accept", Err: emfile})
			start := time.Now()
			errc := startServe(s, l)
			defer stop(t, l, errc)

			time.Sleep(200 * time.Millisecond) // fake time: the pauses add up to 115ms
			select {
			case err := <-errc:
				t.Fatalf("Serve returned on a temporary error: %v", err)
			default:
			}
			c := l.dial(t)
			defer c.Close()
			require.NoError(t, echo(c, "up"))
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()

			var offsets []time.Duration
			for _, at := range l.callTimes() {
				offsets = append(offsets, at.Sub(start))
			}
			ms := time.Millisecond
			// Pauses of 5, 10, 20, 40 and 40 ms; then the connection; the next
			// call comes at once; then, after the reset, 5 ms.
			want := []time.Duration{0, 5 * ms, 15 * ms, 35 * ms, 75 * ms, 115 * ms, 115 * ms, 120 * ms}
			require.Len(t, offsets, len(want), "Accept calls at %v", offsets)
			assert.Equal(t, want[:6], offsets[:6], "pauses between accepts")
			assert.GreaterOrEqual(t, offsets[6], offsets[5], "accept after the connection")
			assert.Equal(t, 5*ms, offsets[7]-offsets[6], "the back-off resets after a successful accept")
			assert.EqualValues(t, 6, s.Stats().AcceptErrors)
		})
	})

	t.Run("a permanent error ends Serve", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, err := New(Config{})
			require.NoError(t, err)
			boom := errors.New("boom")
			errc := startServe(s, newPipeListener(boom))
			select {
			case err := <-errc:
				assert.ErrorIs(t, err, boom)
				assert.NotErrorIs(t, err, ErrNotImplemented)
			case <-time.After(time.Minute):
				t.Fatal("Serve did not return on a permanent error")
			}
			assert.EqualValues(t, 0, s.Stats().AcceptErrors)
		})
	})

	t.Run("nextBackoff", func(t *testing.T) {
		ms := time.Millisecond
		assert.Equal(t, 5*ms, nextBackoff(0, 5*ms, time.Second))
		assert.Equal(t, 10*ms, nextBackoff(5*ms, 5*ms, time.Second))
		assert.Equal(t, time.Second, nextBackoff(800*ms, 5*ms, time.Second))
		assert.Equal(t, time.Second, nextBackoff(time.Second, 5*ms, time.Second))
	})
}

func TestTask3_ConnectionCapRejects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := New(Config{MaxConns: 2})
		require.NoError(t, err)
		l := newPipeListener()
		errc := startServe(s, l)
		defer stop(t, l, errc)

		a := l.dial(t)
		defer a.Close()
		require.NoError(t, echo(a, "a"))
		b := l.dial(t)
		defer b.Close()
		require.NoError(t, echo(b, "b"))

		over := l.dial(t)
		defer over.Close()
		synctest.Wait()
		_, err = over.Read(make([]byte, 1))
		assert.ErrorIs(t, err, io.EOF, "a connection over the cap is closed at once")
		st := s.Stats()
		assert.EqualValues(t, 2, st.Active, "Active")
		assert.EqualValues(t, 1, st.Rejected, "Rejected")

		// Closing one frees a slot for the next.
		a.Close()
		synctest.Wait()
		d := l.dial(t)
		defer d.Close()
		require.NoError(t, echo(d, "d"))
		st = s.Stats()
		assert.EqualValues(t, 3, st.Accepted, "Accepted")
		assert.EqualValues(t, 1, st.Rejected, "Rejected")
		assert.EqualValues(t, 2, st.Active, "Active")
	})
}

func TestTask4_IdleDeadlineClosesSilentConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := New(Config{IdleTimeout: time.Minute})
		require.NoError(t, err)
		l := newPipeListener()
		errc := startServe(s, l)
		defer stop(t, l, errc)

		c := l.dial(t)
		defer c.Close()
		require.NoError(t, echo(c, "hi"))
		for range 3 { // each message renews the deadline
			time.Sleep(59 * time.Second)
			require.NoError(t, echo(c, "still here"))
		}
		require.NoError(t, c.SetReadDeadline(time.Time{}))
		time.Sleep(61 * time.Second)
		synctest.Wait()
		_, err = c.Read(make([]byte, 1))
		assert.ErrorIs(t, err, io.EOF, "the server closes a connection silent for IdleTimeout")
		st := s.Stats()
		assert.EqualValues(t, 1, st.IdleClosed, "IdleClosed")
		assert.EqualValues(t, 0, st.Active, "Active")
	})
}

func TestTask5_ShutdownClosesEverything(t *testing.T) {
	t.Run("connections and Serve", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, err := New(Config{})
			require.NoError(t, err)
			l := newPipeListener()
			errc := startServe(s, l)
			a, b := l.dial(t), l.dial(t)
			defer a.Close()
			defer b.Close()
			require.NoError(t, echo(a, "a"))
			require.NoError(t, echo(b, "b"))

			require.NoError(t, s.Shutdown(context.Background()))
			synctest.Wait() // Serve's goroutine sends its result after Serve returns
			select {
			case err := <-errc:
				assert.ErrorIs(t, err, ErrServerClosed)
			default:
				t.Fatal("Serve is still running after Shutdown returned")
			}
			for _, c := range []net.Conn{a, b} {
				_, err := c.Read(make([]byte, 1))
				assert.ErrorIs(t, err, io.EOF, "Shutdown closes open connections")
			}
			assert.EqualValues(t, 0, s.Stats().Active)
			assert.EqualValues(t, 0, s.Stats().IdleClosed, "a shutdown is not an idle close")

			// Serve after Shutdown refuses at once and closes its listener.
			l2 := newPipeListener()
			assert.ErrorIs(t, s.Serve(l2), ErrServerClosed)
			select {
			case <-l2.closed:
			default:
				t.Error("Serve after Shutdown left its listener open")
			}
			assert.NoError(t, s.Shutdown(context.Background()), "a second Shutdown")
		})
	})

	t.Run("interrupts a back-off", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, err := New(Config{BackoffMin: time.Hour, BackoffMax: time.Hour})
			require.NoError(t, err)
			start := time.Now()
			errc := startServe(s, newPipeListener(syscall.EMFILE))
			synctest.Wait()
			require.NoError(t, s.Shutdown(context.Background()))
			select {
			case err := <-errc:
				assert.ErrorIs(t, err, ErrServerClosed)
			case <-time.After(time.Minute):
				t.Fatal("Serve kept sleeping after Shutdown")
			}
			assert.Less(t, time.Since(start), time.Minute)
		})
	})
}

func TestNew_Config(t *testing.T) {
	_, err := New(Config{MaxConns: -1})
	assert.ErrorIs(t, err, ErrInvalidConfig)
	_, err = New(Config{BackoffMin: time.Second, BackoffMax: time.Millisecond})
	assert.ErrorIs(t, err, ErrInvalidConfig)
	s, err := New(Config{})
	require.NoError(t, err)
	assert.Equal(t, DefaultMaxConns, s.cfg.MaxConns)
	assert.Equal(t, DefaultReadBufferSize, s.cfg.ReadBufferSize)
	assert.True(t, IsTemporary(&net.OpError{Op: "accept", Err: syscall.EMFILE}))
	assert.False(t, IsTemporary(net.ErrClosed))
}
