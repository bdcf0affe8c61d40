//go:build linux && floodgate.solution

package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"floodgate/capstone/router"
	"floodgate/capstone/session"
	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The tests here run ServeEpoll in a child process (this test binary run
// again, TestEpollLimitChild) with a low soft RLIMIT_NOFILE, so the limit
// does not reach the other tests; the parent, with the usual limit, is
// the clients.

const (
	childEnv   = "FLOODGATE_EPOLL_CHILD" // "sharded" or "shared"
	childLimit = "FLOODGATE_EPOLL_LIMIT" // the child's soft RLIMIT_NOFILE
	childConns = "FLOODGATE_EPOLL_CONNS" // its EpollConfig.MaxConns
	childTag   = "FGCHILD "
)

// childStats is what the child reports when it stops.
type childStats struct {
	Opened int64 // sessions opened (CONNECTs accepted)
	Peak   int64 // most connections open at once
	Err    string
}

// countingHub opens a fresh session for every CONNECT and counts them.
type countingHub struct{ opened atomic.Int64 }

func (h *countingHub) Open(c *session.Conn, id string, clean bool) (*session.State, bool) {
	h.opened.Add(1)
	return session.NewState(id, 16, func(string) {}), false
}
func (h *countingHub) Route(*router.Message) bool                       { return false }
func (h *countingHub) Router() *router.Router                           { return nil }
func (h *countingHub) Retain(*router.Message)                           {}
func (h *countingHub) Changed(*session.Conn, *session.State)            {}
func (h *countingHub) Count(string)                                     {}
func (h *countingHub) Closed(*session.Conn, *session.State, *mqtt.Will) {}

// TestEpollLimitChild is the child: it lowers its soft RLIMIT_NOFILE,
// prints its plan and address, serves until its standard input closes,
// and prints its counts. Skipped unless run by a test below.
func TestEpollLimitChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("the child of TestServeEpoll_PrivateFDs*; runs only in their subprocess")
	}
	limit, err := strconv.ParseUint(os.Getenv(childLimit), 10, 64)
	require.NoError(t, err)
	conns, err := strconv.Atoi(os.Getenv(childConns))
	require.NoError(t, err)
	var r unix.Rlimit
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &r))
	r.Cur = limit
	require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &r))

	cfg := EpollConfig{MaxConns: conns, PrivateFDs: mode == "sharded",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if mode == "shared" {
		cfg.MaxConns, cfg.Loops = 0, 2
	}
	plan, err := PlanEpoll(cfg)
	require.NoError(t, err)
	pj, err := json.Marshal(plan)
	require.NoError(t, err)
	fmt.Printf("%splan %s\n", childTag, pj)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	fmt.Printf("%saddr %s\n", childTag, ln.Addr())
	hub := &countingHub{}
	var open, peak atomic.Int64
	newConn := func(wake func()) (*session.Conn, func()) {
		n := open.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		return session.NewDriven(&session.Config{}, hub, mqtt.Success, wake), func() { open.Add(-1) }
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the parent closes our standard input to stop us
		defer wg.Done()
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	err = ServeEpoll(ctx, ln, cfg, newConn)
	wg.Wait()
	st := childStats{Opened: hub.opened.Load(), Peak: peak.Load()}
	if err != nil {
		st.Err = err.Error()
	}
	sj, err := json.Marshal(st)
	require.NoError(t, err)
	fmt.Printf("%sstats %s\n", childTag, sj)
}

// child is a running child process.
type child struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // its tagged stdout lines
	stderr syncBuffer
	plan   EpollPlan
	addr   string
}

const childWait = 30 * time.Second

// syncBuffer is a bytes.Buffer that exec's copying goroutine and the test
// may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func startChild(t *testing.T, mode string, limit uint64, conns int) *child {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a bound, not a clock
	t.Cleanup(cancel)
	c := &child{t: t, lines: make(chan string, 8)}
	c.cmd = exec.CommandContext(ctx, os.Args[0], "-test.run=^TestEpollLimitChild$", "-test.count=1")
	c.cmd.Env = append(os.Environ(), childEnv+"="+mode, childLimit+"="+strconv.FormatUint(limit, 10),
		childConns+"="+strconv.Itoa(conns))
	c.cmd.Stderr = &c.stderr
	var err error
	c.stdin, err = c.cmd.StdinPipe()
	require.NoError(t, err)
	out, err := c.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, c.cmd.Start())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), childTag); ok {
				c.lines <- s
			}
		}
	}()
	t.Cleanup(func() {
		c.stdin.Close()
		for range c.lines { // until its stdout closes
		}
		<-done
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("child: %v\n%s", err, c.stderr.String())
		}
	})
	require.NoError(t, json.Unmarshal([]byte(c.expect("plan ")), &c.plan))
	c.addr = c.expect("addr ")
	return c
}

// expect returns the child's next line, which must start with prefix.
func (c *child) expect(prefix string) string {
	c.t.Helper()
	select {
	case s, ok := <-c.lines:
		require.True(c.t, ok, "the child ended before %q\n%s", prefix, c.stderr.String())
		rest, ok := strings.CutPrefix(s, prefix)
		require.True(c.t, ok, "child said %q, want %q", s, prefix)
		return rest
	case <-time.After(childWait):
		c.t.Fatalf("no %q from the child\n%s", prefix, c.stderr.String())
		return ""
	}
}

// stop closes the child's standard input and returns its counts.
func (c *child) stop() childStats {
	c.t.Helper()
	require.NoError(c.t, c.stdin.Close())
	var st childStats
	require.NoError(c.t, json.Unmarshal([]byte(c.expect("stats ")), &st))
	require.Empty(c.t, st.Err, "ServeEpoll's error")
	return st
}

// dialConnect opens a connection to addr and sends a 3.1.1 CONNECT.
func dialConnect(t *testing.T, addr string, i int) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	require.NoError(t, nc.SetDeadline(time.Now().Add(childWait)))
	b, err := (&mqtt.Connect{ClientID: fmt.Sprintf("c%d", i), CleanStart: true}).AppendTo(nil, mqtt.V311)
	require.NoError(t, err)
	_, err = nc.Write(b)
	require.NoError(t, err)
	return nc
}

// readConnack reads a CONNACK that accepts.
func readConnack(t *testing.T, nc net.Conn, i int) {
	t.Helper()
	var b [4]byte
	_, err := io.ReadFull(nc, b[:])
	require.NoError(t, err, "connection %d: no CONNACK", i)
	require.Equal(t, [4]byte{0x20, 2, 0, 0}, b, "connection %d's CONNACK", i)
}

// With private fd tables one process holds more connections than its
// RLIMIT_NOFILE lets one table hold: here 600 open at once, each with its
// CONNACK, under a soft limit of 256, spread over loops none of which
// could hold them all (the first to fill up hands the listener on).
func TestServeEpoll_PrivateFDsHoldMoreThanTheLimit(t *testing.T) {
	const limit, conns = 256, 600
	c := startChild(t, "sharded", limit, conns)
	require.True(t, c.plan.PrivateFDs, "plan %+v", c.plan)
	require.GreaterOrEqual(t, c.plan.Loops, 2)
	require.Less(t, c.plan.PerLoop, conns, "one loop could hold them all")
	require.GreaterOrEqual(t, c.plan.Cap, conns)
	t.Log(c.plan)

	ncs := make([]net.Conn, conns)
	for i := range ncs {
		ncs[i] = dialConnect(t, c.addr, i)
	}
	for i, nc := range ncs {
		readConnack(t, nc, i)
	}
	st := c.stop()
	assert.Equal(t, int64(conns), st.Opened, "sessions opened")
	assert.Equal(t, int64(conns), st.Peak, "connections open at once")
	assert.Greater(t, st.Peak, int64(limit), "more than RLIMIT_NOFILE")
	for i, nc := range ncs { // closed by the child's shutdown
		_, err := io.ReadAll(nc)
		require.NoError(t, err, "connection %d", i)
	}
}

// Without private tables the same limit caps the process: past it the
// loops stop accepting (no spin, no crash), the connections wait in the
// listen queue, and each is served as soon as an earlier one closes.
func TestServeEpoll_SharedTableWaitsPastTheLimit(t *testing.T) {
	const limit, conns = 128, 200
	c := startChild(t, "shared", limit, conns)
	require.False(t, c.plan.PrivateFDs, "plan %+v", c.plan)

	ncs := make([]net.Conn, conns)
	for i := range ncs {
		ncs[i] = dialConnect(t, c.addr, i)
	}
	for i, nc := range ncs {
		readConnack(t, nc, i) // connection i waits for earlier ones to close
		require.NoError(t, nc.Close())
	}
	st := c.stop()
	assert.Equal(t, int64(conns), st.Opened, "every connection served in the end")
	assert.Less(t, st.Peak, int64(limit), "connections open at once")
}
