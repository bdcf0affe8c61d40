package pools

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"weak"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTask1_SizeClasses(t *testing.T) {
	var p BufPool
	for _, c := range []struct{ n, class int }{
		{0, 512}, {1, 512}, {512, 512}, {513, 1024}, {1000, 1024},
		{4096, 4096}, {4097, 8192}, {65536, 65536},
	} {
		b := p.Get(c.n)
		require.Len(t, *b, c.n)
		assert.GreaterOrEqual(t, cap(*b), c.class, "Get(%d)", c.n)
		assert.Less(t, cap(*b), 2*c.class, "Get(%d) must come from the %d class", c.n, c.class)
		p.Put(b)
	}
	t.Run("oversized buffers are dropped, not pinned", func(t *testing.T) {
		var p BufPool
		huge := make([]byte, 1<<20)
		p.Put(&huge)
		require.EqualValues(t, 1, p.Dropped())
		tiny := make([]byte, 100)
		p.Put(&tiny)
		require.EqualValues(t, 2, p.Dropped())
		big := p.Get(MaxBuffer + 1)
		require.Len(t, *big, MaxBuffer+1)
		p.Put(big)
		require.EqualValues(t, 3, p.Dropped())
		for range 100 {
			b := p.Get(600)
			require.Less(t, cap(*b), 2048, "a small Get must never see the 1 MiB buffer")
			p.Put(b)
		}
	})
	t.Run("a buffer goes back to the class its capacity covers", func(t *testing.T) {
		var p BufPool
		odd := make([]byte, 10, 3000) // covers the 2K class, not the 4K one
		p.Put(&odd)
		require.Zero(t, p.Dropped())
		b := p.Get(3000)
		require.GreaterOrEqual(t, cap(*b), 3000)
		if !raceEnabled {
			c := p.Get(2048)
			require.Equal(t, 3000, cap(*c), "the 3000-byte buffer serves a 2K Get")
			require.Len(t, *c, 2048)
		}
	})
	t.Run("no allocation once warm", func(t *testing.T) {
		if raceEnabled {
			t.Skip("sync.Pool drops items at random under -race")
		}
		var p BufPool
		p.Put(p.Get(1500))
		allocs := testing.AllocsPerRun(1000, func() {
			b := p.Get(1500)
			(*b)[0] = 1
			p.Put(b)
		})
		require.Zero(t, allocs)
	})
}

func TestTask2_PooledMessagesKeepNoPointers(t *testing.T) {
	var mp MessagePool
	t.Run("Put drops every pointer", func(t *testing.T) {
		m := mp.Get()
		client := &Client{ID: "device-7"}
		seen := weak.Make(client)
		m.Topic, m.From = "sensors/7/temp", client
		m.Props = map[string]string{"unit": "celsius"}
		m.Payload = append(m.Payload, "21.5"...)
		mp.Put(m)
		// We still hold m, so we can look inside: the pool must not keep
		// the client (or anything else) alive through it.
		require.Nil(t, m.From)
		require.Empty(t, m.Topic)
		require.Empty(t, m.Props)
		require.Empty(t, m.Payload)
		client = nil
		runtime.GC()
		require.Nil(t, seen.Value(), "the client was collected")
	})
	t.Run("a big payload is not kept", func(t *testing.T) {
		m := mp.Get()
		m.Payload = make([]byte, 64<<10)
		mp.Put(m)
		require.Nil(t, m.Payload)
		m = mp.Get()
		m.Payload = append(m.Payload, make([]byte, 1000)...)
		mp.Put(m)
		require.NotNil(t, m.Payload, "a small payload buffer is worth keeping")
		require.Empty(t, m.Payload)
	})
	t.Run("Get returns a clean message", func(t *testing.T) {
		for range 10 {
			m := mp.Get()
			require.Nil(t, m.From)
			require.Empty(t, m.Topic)
			require.Empty(t, m.Props)
			require.Empty(t, m.Payload)
			m.Topic, m.From = "x", &Client{}
			mp.Put(m)
		}
	})
	t.Run("no allocation once warm", func(t *testing.T) {
		if raceEnabled {
			t.Skip("sync.Pool drops items at random under -race")
		}
		client := &Client{ID: "d"}
		use := func() {
			m := mp.Get()
			m.Topic, m.From = "a/b", client
			if m.Props == nil {
				m.Props = make(map[string]string, 1)
			}
			m.Props["qos"] = "1"
			m.Payload = append(m.Payload, "payload"...)
			mp.Put(m)
		}
		use()
		require.Zero(t, testing.AllocsPerRun(1000, use))
	})
}

// fakeConn is a connection the pool tests can inspect.
type fakeConn struct {
	net.Conn
	id     int
	closed atomic.Bool
	dead   atomic.Bool
}

func (c *fakeConn) Close() error { c.closed.Store(true); return nil }

type fakeSink struct {
	mu    sync.Mutex
	conns []*fakeConn
}

func (s *fakeSink) Dial(context.Context) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &fakeConn{id: len(s.conns)}
	s.conns = append(s.conns, c)
	return c, nil
}

func (s *fakeSink) closed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.conns {
		if c.closed.Load() {
			n++
		}
	}
	return n
}

func checkFake(c net.Conn) error {
	if c.(*fakeConn).dead.Load() {
		return io.EOF
	}
	return nil
}

func newPool(t *testing.T, sink *fakeSink, maxOpen, maxIdle int) *ConnPool {
	t.Helper()
	p, err := NewConnPool(ConnConfig{Dial: sink.Dial, MaxOpen: maxOpen, MaxIdle: maxIdle, Check: checkFake})
	require.NoError(t, err)
	return p
}

var errBroken = errors.New("broken pipe")

func TestTask3_ConnPool(t *testing.T) {
	t.Run("MaxOpen bounds the connections; Get waits with its context", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			sink := &fakeSink{}
			p := newPool(t, sink, 2, 2)
			defer p.Close()
			c1, err := p.Get(t.Context())
			require.NoError(t, err)
			c2, err := p.Get(t.Context())
			require.NoError(t, err)
			require.NotSame(t, c1, c2)
			require.Equal(t, 2, p.Open())

			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			start := time.Now()
			_, err = p.Get(ctx)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.Equal(t, time.Second, time.Since(start))
			require.EqualValues(t, 1, p.Stats().Waits)

			// A waiting Get gets the connection put back, with no new dial.
			got := make(chan net.Conn, 1)
			go func() {
				c, err := p.Get(t.Context())
				assert.NoError(t, err)
				got <- c
			}()
			synctest.Wait()
			require.Empty(t, got, "still waiting")
			p.Put(c1, nil)
			require.Same(t, c1, <-got)
			require.EqualValues(t, 2, p.Stats().Dials)
			p.Put(c1, nil)
			p.Put(c2, nil)
		})
	})
	t.Run("MaxIdle, broken and unhealthy connections are closed", func(t *testing.T) {
		sink := &fakeSink{}
		p := newPool(t, sink, 4, 2)
		defer p.Close()
		var cs []net.Conn
		for range 4 {
			c, err := p.Get(t.Context())
			require.NoError(t, err)
			cs = append(cs, c)
		}
		p.Put(cs[0], errBroken)
		require.Equal(t, 1, sink.closed(), "a connection that failed is not reused")
		for _, c := range cs[1:] {
			p.Put(c, nil)
		}
		require.Equal(t, 2, p.Idle())
		require.Equal(t, 2, p.Open())
		require.Equal(t, 2, sink.closed(), "the third idle one is over MaxIdle")

		for _, c := range sink.conns {
			c.dead.Store(!c.closed.Load()) // the sink restarted: every idle connection is dead
		}
		c, err := p.Get(t.Context())
		require.NoError(t, err)
		require.Equal(t, 4, c.(*fakeConn).id, "both dead idle connections skipped, a new one dialled")
		require.EqualValues(t, 2, p.Stats().Unhealthy)
		require.Equal(t, 4, sink.closed())
		p.Put(c, nil)
		c, err = p.Get(t.Context())
		require.NoError(t, err)
		require.Equal(t, 4, c.(*fakeConn).id, "a healthy idle connection is reused")
		require.EqualValues(t, 1, p.Stats().Reused)
		p.Put(c, nil)
	})
	t.Run("Close", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			sink := &fakeSink{}
			p := newPool(t, sink, 1, 1)
			c, err := p.Get(t.Context())
			require.NoError(t, err)
			waiter := make(chan error, 1)
			go func() {
				_, err := p.Get(t.Context())
				waiter <- err
			}()
			synctest.Wait()
			require.NoError(t, p.Close())
			require.ErrorIs(t, <-waiter, ErrClosed, "a waiting Get wakes up")
			_, err = p.Get(t.Context())
			require.ErrorIs(t, err, ErrClosed)
			p.Put(c, nil)
			require.True(t, c.(*fakeConn).closed.Load(), "put back after Close: closed")
			require.Zero(t, p.Open())
		})
	})
	t.Run("never more than MaxOpen in use", func(t *testing.T) {
		sink := &fakeSink{}
		p := newPool(t, sink, 3, 1)
		defer p.Close()
		var inUse, peak atomic.Int64
		var wg sync.WaitGroup
		for range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 50 {
					c, err := p.Get(t.Context())
					if !assert.NoError(t, err) {
						return
					}
					n := inUse.Add(1)
					for {
						old := peak.Load()
						if n <= old || peak.CompareAndSwap(old, n) {
							break
						}
					}
					runtime.Gosched()
					inUse.Add(-1)
					p.Put(c, nil)
				}
			}()
		}
		wg.Wait()
		require.LessOrEqual(t, peak.Load(), int64(3))
		require.LessOrEqual(t, p.Open(), 3)
	})
	t.Run("a real loopback sink, with CheckAlive", func(t *testing.T) {
		addr, stop := startSink(t)
		defer stop()
		p, err := NewConnPool(ConnConfig{Dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}})
		require.NoError(t, err)
		defer p.Close()
		for range 5 {
			c, err := p.Get(t.Context())
			require.NoError(t, err)
			require.NoError(t, roundTrip(c))
			p.Put(c, nil)
		}
		require.EqualValues(t, 1, p.Stats().Dials, "one connection served all five requests")
		require.EqualValues(t, 4, p.Stats().Reused)
	})
}

// dataConn is an open connection with one byte waiting.
type dataConn struct{ net.Conn }

func (dataConn) SetReadDeadline(time.Time) error { return nil }
func (dataConn) Read(b []byte) (int, error)      { b[0] = 'x'; return 1, nil }

func TestCheckAlive(t *testing.T) {
	a, b := net.Pipe()
	require.NoError(t, CheckAlive(a), "open, nothing waiting")
	require.NoError(t, b.Close())
	require.Error(t, CheckAlive(a), "the peer closed")
	require.NoError(t, a.Close())
	require.ErrorIs(t, CheckAlive(dataConn{}), ErrUnexpectedData)

	t.Run("tcp", func(t *testing.T) {
		// A real socket: a read with a past deadline would time out before
		// it looked at the socket and call a closed connection alive.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		defer c.Close()
		s, err := ln.Accept()
		require.NoError(t, err)
		require.NoError(t, CheckAlive(c), "open, nothing waiting")

		_, err = s.Write([]byte("x"))
		require.NoError(t, err)
		// The byte and the FIN reach c's socket asynchronously; wait for
		// each (bounded), never for a fixed time.
		require.Eventually(t, func() bool { return errors.Is(CheckAlive(c), ErrUnexpectedData) },
			10*time.Second, time.Millisecond, "a byte is waiting")
		require.NoError(t, s.Close())
		var last error
		require.Eventually(t, func() bool { last = CheckAlive(c); return last != nil },
			10*time.Second, time.Millisecond, "the peer closed")
		require.ErrorIs(t, last, io.EOF)
	})
}

// startSink serves a loopback sink that answers each "PING\n" with
// "OK\n". stop closes the listener and every connection and waits for
// their goroutines.
func startSink(tb testing.TB) (addr string, stop func()) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadSlice('\n'); err != nil {
						return
					}
					if _, err := c.Write([]byte("OK\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}

// roundTrip sends one request and reads the answer, with a deadline.
func roundTrip(c net.Conn) error {
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("PING\n")); err != nil {
		return err
	}
	var b [3]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return err
	}
	if string(b[:]) != "OK\n" {
		return errors.New("bad answer " + string(b[:]))
	}
	return c.SetDeadline(time.Time{})
}
