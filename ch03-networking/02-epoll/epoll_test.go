package epoll

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	tcpscale "floodgate/ch03-networking/01-tcpscale"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start listens on loopback and runs the loop until the test ends.
func start(t *testing.T, cfg Config) *Loop {
	t.Helper()
	l, err := Listen("127.0.0.1:0", cfg)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- l.Run(context.Background()) }()
	t.Cleanup(func() {
		require.NoError(t, l.Close())
		assert.NoError(t, <-errc, "Run")
	})
	return l
}

func dial(t *testing.T, l *Loop) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, l.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// echo writes msg and reads it back, within two seconds.
func echo(c net.Conn, msg string) error {
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	defer c.SetDeadline(time.Time{})
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

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// pattern is n bytes that are not all the same, so a lost or repeated chunk
// shows.
func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>10)
	}
	return p
}

// maxBytesPerConn bounds the Go memory (heap + stacks) one idle connection
// may cost the loop: a conn struct and a map entry, with no goroutine and no
// buffer. One goroutine stack (2 KiB) alone would break it.
const maxBytesPerConn = 1024

func TestTask1_EchoThousandsWithoutGoroutines(t *testing.T) {
	l := start(t, Config{})
	var cs []*net.TCPConn
	for range 10 {
		cs = append(cs, dial(t, l))
	}
	for round := range 3 {
		for i, c := range cs {
			require.NoError(t, echo(c, string(rune('a'+i))+string(rune('0'+round))), "echo on connection %d", i)
		}
	}

	t.Run("bytes per connection", func(t *testing.T) {
		n := tcpscale.ConnBudget(2000)
		if n < 200 {
			t.Skip("RLIMIT_NOFILE is too low for this test: raise it (ulimit -n 8192)")
		}
		g0 := runtime.NumGoroutine()
		fp, closeAll, err := tcpscale.MeasureConns(l.Addr().Port, n)
		defer closeAll()
		require.NoError(t, err)
		t.Log(fp)
		assert.GreaterOrEqual(t, l.Stats().Conns, int64(n), "Stats().Conns")
		assert.LessOrEqual(t, runtime.NumGoroutine(), g0, "goroutines with %d connections open", n)
		assert.LessOrEqual(t, fp.PerConn(), int64(maxBytesPerConn), "bytes per connection")
	})
}

func TestTask2_QueueWritesUntilWritable(t *testing.T) {
	t.Run("Write takes what the socket takes", func(t *testing.T) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		w, r := fds[0], fds[1]
		defer unix.Close(w)
		rOpen := true
		defer func() {
			if rOpen {
				unix.Close(r)
			}
		}()

		n, err := Write(w, []byte("hello"))
		require.NoError(t, err)
		require.Equal(t, 5, n, "what fits is written at once")

		// Far more than the socket buffers: Write stops at EAGAIN, which is
		// not an error, and says how much went.
		want := pattern(8 << 20)
		n, err = Write(w, want)
		require.NoError(t, err, "a full send buffer (EAGAIN) is not an error")
		require.Positive(t, n)
		require.Less(t, n, len(want), "a non-blocking socket cannot take 8 MiB unread")

		// The peer receives exactly what Write counted, in order.
		got := make([]byte, 0, 5+n)
		buf := make([]byte, 64<<10)
		for len(got) < 5+n {
			k, err := unix.Read(r, buf)
			require.NoError(t, err, "read %d of the %d bytes Write counted", len(got), 5+n)
			got = append(got, buf[:k]...)
		}
		require.Equal(t, "hello", string(got[:5]))
		require.True(t, bytes.Equal(want[:n], got[5:]), "the peer got other bytes than Write counted")

		// A broken connection is an error.
		require.NoError(t, unix.Close(r))
		rOpen = false
		_, err = Write(w, []byte("x"))
		require.Error(t, err, "writing to a socket whose peer is gone")
	})

	cfg := Config{ReadBufferSize: 16 << 10, MaxQueued: 64 << 10}
	l := start(t, cfg)
	a := dial(t, l)
	require.NoError(t, echo(a, "hello"))
	// A sender that does not read: the kernel's buffers take a few MiB, the
	// server's socket fills up, and what is left must wait in its queue.
	const size = 16 << 20
	want := pattern(size)
	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.SetWriteDeadline(time.Now().Add(20 * time.Second))
		_, werr = a.Write(want)
	}()
	defer wg.Wait()
	defer a.Close() // on failure, unblock the writer before waiting for it

	require.Eventually(t, func() bool { return l.Stats().Paused > 0 }, 5*time.Second, time.Millisecond,
		"the loop never stopped reading a connection whose queue reached MaxQueued")

	b := dial(t, l)
	require.NoError(t, echo(b, "not blocked"), "another connection is served while the first one's queue is full")

	require.NoError(t, a.SetReadDeadline(time.Now().Add(20*time.Second)))
	got := make([]byte, size)
	n, err := io.ReadFull(a, got)
	require.NoError(t, err, "reading the echo of %d bytes: got %d; %+v", size, n, l.Stats())
	require.True(t, bytes.Equal(want, got), "the echo differs from what was sent: lost or reordered bytes")
	wg.Wait()
	require.NoError(t, werr)

	st := l.Stats()
	assert.LessOrEqual(t, st.PeakQueued, int64(cfg.MaxQueued+cfg.ReadBufferSize), "the queue stays bounded")
	assert.Positive(t, st.PeakQueued)
	assert.EqualValues(t, 2, st.Conns)
}

func TestTask3_CloseFreesEverything(t *testing.T) {
	t.Run("a FIN after data: flush, then close", func(t *testing.T) {
		l := start(t, Config{MaxQueued: 64 << 10})
		c := dial(t, l)
		require.NoError(t, echo(c, "x"))
		want := pattern(1 << 20)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(want); err == nil {
				c.CloseWrite()
			}
		}()
		defer wg.Wait()
		require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		got, err := io.ReadAll(c)
		require.NoError(t, err, "the server closes after echoing everything")
		assert.True(t, bytes.Equal(want, got), "echoed %d of %d bytes", len(got), len(want))
	})

	t.Run("hang-ups free their descriptors", func(t *testing.T) {
		l := start(t, Config{})
		before := openFDs(t)
		var cs []net.Conn
		for i := range 100 {
			c, err := net.DialTCP("tcp", nil, l.Addr())
			require.NoError(t, err)
			cs = append(cs, c)
			require.NoError(t, echo(c, "x"), "connection %d", i)
		}
		for _, c := range cs {
			c.Close()
		}
		require.Eventually(t, func() bool { return l.Stats().Conns == 0 }, 5*time.Second, time.Millisecond,
			"Stats().Conns after every client hung up")
		assert.EqualValues(t, 100, l.Stats().Closed)
		assert.Equal(t, before, openFDs(t), "open descriptors")
	})

	t.Run("Close closes every connection", func(t *testing.T) {
		before := openFDs(t)
		l, err := Listen("127.0.0.1:0", Config{})
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() { errc <- l.Run(context.Background()) }()
		var cs []net.Conn
		for range 3 {
			c, err := net.DialTCP("tcp", nil, l.Addr())
			require.NoError(t, err)
			defer c.Close()
			cs = append(cs, c)
			if err := echo(c, "x"); err != nil {
				l.Close()
				<-errc
				t.Fatal(err)
			}
		}
		require.NoError(t, l.Close())
		require.NoError(t, <-errc)
		for _, c := range cs {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err := c.Read(make([]byte, 1))
			assert.ErrorIs(t, err, io.EOF, "a client of a closed loop sees EOF")
			c.Close()
		}
		assert.EqualValues(t, 3, l.Stats().Closed)
		assert.Equal(t, before, openFDs(t), "the loop closed all its descriptors")
	})
}

func TestListenAndLifecycle(t *testing.T) {
	_, err := Listen("[::1]:0", Config{})
	assert.ErrorIs(t, err, ErrInvalidConfig)
	_, err = Listen("127.0.0.1:0", Config{MaxQueued: -1})
	assert.ErrorIs(t, err, ErrInvalidConfig)

	before := openFDs(t)
	l, err := Listen("127.0.0.1:0", Config{})
	require.NoError(t, err)
	assert.NotZero(t, l.Addr().Port)
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "a second Close")
	assert.ErrorIs(t, l.Run(context.Background()), ErrClosed, "Run after Close")
	assert.Equal(t, before, openFDs(t))

	// A cancelled context stops Run.
	l, err = Listen("127.0.0.1:0", Config{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- l.Run(ctx) }()
	cancel()
	select {
	case err := <-errc:
		assert.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	require.NoError(t, l.Close())
	assert.Equal(t, before, openFDs(t))
}

// limitFreeFDs lowers the soft RLIMIT_NOFILE so that exactly free
// descriptor numbers are left, and returns a function that restores it.
// RLIMIT_NOFILE caps the descriptor number, not the count: the free numbers
// are the holes below the limit.
func limitFreeFDs(t *testing.T, free int) func() {
	t.Helper()
	var orig syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig))
	dir, err := os.Open("/proc/self/fd")
	require.NoError(t, err)
	names, err := dir.Readdirnames(-1)
	self := int(dir.Fd()) // listed, but free again once closed
	dir.Close()
	require.NoError(t, err)
	used := map[int]bool{}
	for _, name := range names {
		if fd, err := strconv.Atoi(name); err == nil && fd != self {
			used[fd] = true
		}
	}
	limit := 0
	for left := free; left > 0; limit++ {
		if !used[limit] {
			left--
		}
	}
	lowered := orig
	lowered.Cur = uint64(limit)
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered))
	return func() { require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig)) }
}

func TestTask4_RecoverFromEMFILE(t *testing.T) {
	l, err := Listen("127.0.0.1:0", Config{})
	require.NoError(t, err)
	// Four clients connect before the loop runs: the kernel completes their
	// handshakes and queues them on the listener.
	var cs []*net.TCPConn
	for range 4 {
		cs = append(cs, dial(t, l))
	}
	// Leave the process two free descriptors: the loop accepts two
	// connections, then accept4 fails with EMFILE.
	restore := limitFreeFDs(t, 2)
	restored := false
	defer func() {
		if !restored {
			restore()
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- l.Run(context.Background()) }()
	defer func() { l.Close(); <-errc }()

	require.NoError(t, echo(cs[0], "first"), "the first connection is accepted")
	require.NoError(t, echo(cs[1], "second"), "the second connection is accepted")
	require.Eventually(t, func() bool { return l.Stats().AcceptErrors > 0 }, 2*time.Second, time.Millisecond,
		"the third accept should fail with EMFILE")
	assert.EqualValues(t, 2, l.Stats().Conns)

	// One client leaves: its descriptor is freed, and the loop must hand it
	// to a connection still waiting, without a new one arriving to wake it.
	cs[0].Close()
	require.NoError(t, echo(cs[2], "third"), "a connection waiting while descriptors ran out is accepted when one frees up")
	restore()
	restored = true
	cs[1].Close()
	require.NoError(t, echo(cs[3], "fourth"))
}
