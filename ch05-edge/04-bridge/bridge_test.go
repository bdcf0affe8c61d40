package bridge

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestTask1_RecordCodec(t *testing.T) {
	t.Run("round trip", func(t *testing.T) {
		var log []byte
		payloads := [][]byte{{}, []byte("x"), []byte("sensors/t1 21.5"), bytes.Repeat([]byte{0xAB}, 70_000)}
		for _, p := range payloads {
			log = appendRecord(log, p)
		}
		for i, want := range payloads {
			got, n, err := decodeRecord(log)
			require.NoError(t, err, "record %d", i)
			require.Equal(t, HeaderSize+len(want), n, "record %d", i)
			require.Equal(t, want, got, "record %d", i)
			log = log[n:]
		}
		assert.Empty(t, log)
	})
	t.Run("every torn prefix is short, never a record", func(t *testing.T) {
		rec := appendRecord(nil, []byte("sensors/t1 21.5"))
		for cut := range len(rec) {
			_, _, err := decodeRecord(rec[:cut])
			require.ErrorIs(t, err, ErrShortRecord, "record cut at %d of %d bytes", cut, len(rec))
		}
	})
	t.Run("every flipped bit is caught", func(t *testing.T) {
		rec := appendRecord(nil, []byte("sensors/t1 21.5"))
		for i := range len(rec) * 8 {
			bad := bytes.Clone(rec)
			bad[i/8] ^= 1 << (i % 8)
			_, _, err := decodeRecord(bad)
			require.Error(t, err, "bit %d flipped", i)
			if i >= 32 { // past the length: the length still fits, the CRC does not
				require.ErrorIs(t, err, ErrCorrupt, "bit %d flipped", i)
			}
		}
	})
	t.Run("a zero-filled tail is not an empty record", func(t *testing.T) {
		_, _, err := decodeRecord(make([]byte, 64))
		require.ErrorIs(t, err, ErrCorrupt)
	})
	t.Run("a huge length is corrupt, not a reason to wait for more bytes", func(t *testing.T) {
		_, _, err := decodeRecord([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 1, 2})
		require.ErrorIs(t, err, ErrCorrupt)
	})
}

// appendRaw appends bytes to dir's spool log behind the spool's back, as a
// crash in the middle of a write would leave them.
func appendRaw(t *testing.T, dir string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, logName), os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(b)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func openSpool(t *testing.T, dir string) *Spool {
	t.Helper()
	sp, err := OpenSpool(dir)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sp.Close() })
	return sp
}

func appendN(t *testing.T, sp *Spool, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		require.NoError(t, sp.Append([]byte(fmt.Sprintf("record-%04d", i))))
	}
}

// drain returns every record Next has, without waiting for more.
func drain(t *testing.T, sp *Spool) (out []string, last Record) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		rec, err := sp.Next(ctx)
		if err != nil {
			require.ErrorIs(t, err, context.Canceled)
			return out, last
		}
		out = append(out, string(rec.Payload))
		last = rec
	}
}

func names(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("record-%04d", i))
	}
	return out
}

func TestTask2_Spool(t *testing.T) {
	t.Run("records come back in order, and again after a reopen", func(t *testing.T) {
		dir := t.TempDir()
		sp := openSpool(t, dir)
		appendN(t, sp, 0, 100)
		got, _ := drain(t, sp)
		require.Equal(t, names(0, 100), got)
		require.NoError(t, sp.Close())
		got, _ = drain(t, openSpool(t, dir)) // nothing acknowledged: all of it again
		require.Equal(t, names(0, 100), got)
	})
	t.Run("the cursor survives a reopen", func(t *testing.T) {
		dir := t.TempDir()
		sp := openSpool(t, dir)
		appendN(t, sp, 0, 10)
		ctx := context.Background()
		for range 4 {
			rec, err := sp.Next(ctx)
			require.NoError(t, err)
			require.NoError(t, sp.Ack(rec))
		}
		require.NoError(t, sp.Close())
		got, _ := drain(t, openSpool(t, dir))
		require.Equal(t, names(4, 10), got)
	})
	t.Run("a torn tail is cut off, and appends go on after it", func(t *testing.T) {
		dir := t.TempDir()
		sp := openSpool(t, dir)
		appendN(t, sp, 0, 10)
		require.NoError(t, sp.Close())
		whole := appendRecord(nil, []byte("record-torn"))
		appendRaw(t, dir, whole[:len(whole)-3])
		sp = openSpool(t, dir)
		assert.Equal(t, int64(len(whole)-3), sp.Truncated())
		appendN(t, sp, 10, 12)
		got, _ := drain(t, sp)
		require.Equal(t, names(0, 12), got)
	})
	t.Run("a zero-filled tail is cut off", func(t *testing.T) {
		dir := t.TempDir()
		sp := openSpool(t, dir)
		appendN(t, sp, 0, 3)
		require.NoError(t, sp.Close())
		appendRaw(t, dir, make([]byte, 4096))
		sp = openSpool(t, dir)
		assert.Equal(t, int64(4096), sp.Truncated())
		got, _ := drain(t, sp)
		require.Equal(t, names(0, 3), got)
	})
	t.Run("a damaged or misplaced cursor replays everything", func(t *testing.T) {
		for name, cursor := range map[string][]byte{
			"garbage":         []byte("not a cursor"),
			"not on a record": func() []byte { b := make([]byte, 12); b[7] = 5; return b }(),
		} {
			dir := t.TempDir()
			sp := openSpool(t, dir)
			appendN(t, sp, 0, 5)
			require.NoError(t, sp.Close())
			require.NoError(t, os.WriteFile(filepath.Join(dir, cursorName), cursor, 0o600))
			got, _ := drain(t, openSpool(t, dir))
			require.Equal(t, names(0, 5), got, name)
		}
	})
	t.Run("Next waits for Append", func(t *testing.T) {
		sp := openSpool(t, t.TempDir())
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		got := make(chan string, 1)
		go func() {
			rec, err := sp.Next(ctx)
			if err != nil {
				got <- err.Error()
				return
			}
			got <- string(rec.Payload)
		}()
		require.NoError(t, sp.Append([]byte("late")))
		require.Equal(t, "late", <-got)
	})
	t.Run("a drained log is compacted", func(t *testing.T) {
		dir := t.TempDir()
		sp := openSpool(t, dir)
		payload := bytes.Repeat([]byte("p"), 4096)
		n := CompactAt/len(payload) + 2
		for range n {
			require.NoError(t, sp.Append(payload))
		}
		ctx := context.Background()
		for range n {
			rec, err := sp.Next(ctx)
			require.NoError(t, err)
			require.NoError(t, sp.Ack(rec))
		}
		assert.Zero(t, sp.Pending())
		st, err := os.Stat(filepath.Join(dir, logName))
		require.NoError(t, err)
		assert.Zero(t, st.Size(), "the log should start again from empty")
		require.NoError(t, sp.Append([]byte("after")))
		require.NoError(t, sp.Close())
		got, _ := drain(t, openSpool(t, dir))
		require.Equal(t, []string{"after"}, got)
	})
	t.Run("bad input gets a clear error", func(t *testing.T) {
		sp := openSpool(t, t.TempDir())
		require.ErrorIs(t, sp.Append(make([]byte, MaxPayload+1)), ErrTooLarge)
		require.NoError(t, sp.Close())
		require.ErrorIs(t, sp.Append([]byte("x")), ErrClosed)
	})
}

func bridgeConfig(local, upstream, dir string) Config {
	return Config{
		Local: local, Upstream: upstream, SpoolDir: dir,
		Topics:         []string{"sensors/#"},
		ClientID:       bridgeID,
		RetryInterval:  50 * time.Millisecond,
		PublishTimeout: 2 * time.Second,
	}
}

// fakeMessage is a received MQTT message whose Ack runs a check.
type fakeMessage struct {
	topic   string
	payload []byte
	onAck   func()
	acks    int
}

func (m *fakeMessage) Duplicate() bool   { return false }
func (m *fakeMessage) Qos() byte         { return 1 }
func (m *fakeMessage) Retained() bool    { return false }
func (m *fakeMessage) Topic() string     { return m.topic }
func (m *fakeMessage) MessageID() uint16 { return 1 }
func (m *fakeMessage) Payload() []byte   { return m.payload }
func (m *fakeMessage) Ack() {
	m.acks++
	if m.onAck != nil {
		m.onAck()
	}
}

func TestTask3_Accept(t *testing.T) {
	t.Run("New checks its config", func(t *testing.T) {
		_, err := New(Config{Local: "a:1", Upstream: "b:1", SpoolDir: "d"}, nil)
		require.ErrorIs(t, err, ErrBadConfig)
	})
	t.Run("the record is in the spool when Ack is called", func(t *testing.T) {
		dir := t.TempDir()
		b, err := New(bridgeConfig("a:1", "b:1", dir), nil)
		require.NoError(t, err)
		sp := openSpool(t, dir)
		for i := range 5 {
			m := &fakeMessage{topic: "sensors/t1", payload: []byte(fmt.Sprint("reading-", i))}
			m.onAck = func() {
				assert.Equal(t, i+1, len(readLog(t, dir)), "PUBACK for message %d before its record was written", i)
			}
			require.NoError(t, b.accept(sp, m))
			require.Equal(t, 1, m.acks, "message %d", i)
		}
		assert.Equal(t, Stats{Accepted: 5}, b.Stats())
	})
	t.Run("no Ack when the spool fails", func(t *testing.T) {
		dir := t.TempDir()
		b, err := New(bridgeConfig("a:1", "b:1", dir), nil)
		require.NoError(t, err)
		sp := openSpool(t, dir)
		require.NoError(t, sp.Close()) // every Append now fails
		m := &fakeMessage{topic: "sensors/t1", payload: []byte("lost?")}
		require.ErrorIs(t, b.accept(sp, m), ErrClosed)
		assert.Zero(t, m.acks, "acknowledged a message that is not on disk")
		assert.Equal(t, Stats{}, b.Stats())
	})
	t.Run("a message too large for the spool is acknowledged and dropped", func(t *testing.T) {
		dir := t.TempDir()
		b, err := New(bridgeConfig("a:1", "b:1", dir), nil)
		require.NoError(t, err)
		sp := openSpool(t, dir)
		m := &fakeMessage{topic: "sensors/t1", payload: make([]byte, MaxPayload)}
		require.NoError(t, b.accept(sp, m))
		assert.Equal(t, 1, m.acks, "the broker would send it again forever")
		assert.Equal(t, Stats{Dropped: 1}, b.Stats())
		assert.Empty(t, readLog(t, dir))
	})
	t.Run("chosen topics are on disk before the PUBACK", func(t *testing.T) {
		dir := t.TempDir()
		local := startBroker(t, "127.0.0.1:0", newWatch())
		var mu sync.Mutex
		var notOnDisk []string
		local.watch.onAccept = func(payload string) {
			// The broker just read the bridge's PUBACK: the record must be
			// in the spool file already.
			if !fileContains(dir, []byte(payload)) {
				mu.Lock()
				notOnDisk = append(notOnDisk, payload)
				mu.Unlock()
			}
		}
		b := runBridge(t, bridgeConfig(local.addr, freeAddr(t), dir))
		local.watch.until(t, "the bridge to subscribe", b.exited, func(_, _ []string, s int) bool { return s > 0 })

		pub := publisher(t, local.addr)
		var want []string
		for i := range 50 {
			publish(t, pub, "other/x", fmt.Sprint("not-chosen-", i))
			payload := fmt.Sprintf("reading-%03d", i)
			publish(t, pub, "sensors/t1", payload)
			want = append(want, "sensors/t1 "+payload)
		}
		local.watch.until(t, "50 messages accepted", b.exited, func(a, _ []string, _ int) bool { return len(a) >= 50 })
		b.stop()
		require.NoError(t, b.err, "Run should return nil when its context is cancelled")
		mu.Lock()
		assert.Empty(t, notOnDisk, "acknowledged before they were in the spool")
		mu.Unlock()
		assert.Equal(t, uint64(50), b.Stats().Accepted)
		// The upstream is down, so everything is still in the spool.
		require.Equal(t, want, readLog(t, dir))
	})
}

// readLog decodes every record in dir's spool log, straight from the file.
func readLog(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, logName))
	require.NoError(t, err)
	var out []string
	for len(data) > 0 {
		payload, n, err := decodeRecord(data)
		require.NoError(t, err)
		topic, body, err := decodeMessage(payload)
		require.NoError(t, err)
		out = append(out, topic+" "+string(body))
		data = data[n:]
	}
	return out
}

// firstSeen returns the items of list without repeats, in the order each
// first appeared.
func firstSeen(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func TestTask4_Forward(t *testing.T) {
	t.Run("the spool is replayed in order when the upstream returns", func(t *testing.T) {
		local := startBroker(t, "127.0.0.1:0", newWatch())
		upAddr := freeAddr(t)
		exited := runBridge(t, bridgeConfig(local.addr, upAddr, t.TempDir())).exited
		local.watch.until(t, "the bridge to subscribe", exited, func(_, _ []string, s int) bool { return s > 0 })
		pub := publisher(t, local.addr)
		var want []string
		for i := range 100 {
			payload := fmt.Sprintf("reading-%03d", i)
			publish(t, pub, "sensors/t1", payload)
			want = append(want, "sensors/t1 "+payload)
			publish(t, pub, "other/x", payload)
		}
		local.watch.until(t, "100 messages accepted", exited, func(a, _ []string, _ int) bool { return len(a) >= 100 })

		up := startBroker(t, upAddr, newWatch())
		up.watch.until(t, "all 100 upstream", exited, func(_, p []string, _ int) bool { return len(firstSeen(p)) >= 100 })
		_, published, _ := up.watch.snapshot()
		require.Equal(t, want, firstSeen(published), "upstream got them out of order, or got others")
	})
	t.Run("an outage in mid-stream is spooled and caught up", func(t *testing.T) {
		local := startBroker(t, "127.0.0.1:0", newWatch())
		upWatch := newWatch()
		up := startBroker(t, "127.0.0.1:0", upWatch)
		b := runBridge(t, bridgeConfig(local.addr, up.addr, t.TempDir()))
		exited := b.exited
		local.watch.until(t, "the bridge to subscribe", exited, func(_, _ []string, s int) bool { return s > 0 })
		pub := publisher(t, local.addr)
		var want []string
		send := func(from, to int) {
			for i := from; i < to; i++ {
				payload := fmt.Sprintf("reading-%03d", i)
				publish(t, pub, "sensors/t1", payload)
				want = append(want, "sensors/t1 "+payload)
			}
		}
		send(0, 30)
		upWatch.until(t, "the first 30 upstream", exited, func(_, p []string, _ int) bool { return len(firstSeen(p)) >= 30 })

		up.stop() // the uplink drops
		send(30, 60)
		local.watch.until(t, "60 messages accepted", exited, func(a, _ []string, _ int) bool { return len(a) >= 60 })
		startBroker(t, up.addr, upWatch) // and comes back, at the same address
		upWatch.until(t, "all 60 upstream", exited, func(_, p []string, _ int) bool { return len(firstSeen(p)) >= 60 })
		_, published, _ := upWatch.snapshot()
		require.Equal(t, want, firstSeen(published))
		assert.GreaterOrEqual(t, b.Stats().Accepted, uint64(60))
	})
	t.Run("nothing accepted is lost when the bridge is killed with SIGKILL", func(t *testing.T) {
		testSIGKILL(t)
	})
}

// buildBridge builds cmd/bridge with the flags this test binary was built
// with (-tags, -race), so that the child runs the same code as the test.
func buildBridge(t *testing.T) string {
	t.Helper()
	args := []string{"build", "-o", filepath.Join(t.TempDir(), "bridge")}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "-tags" && s.Value != "":
				args = append(args, "-tags="+s.Value)
			case s.Key == "-race" && s.Value == "true":
				args = append(args, "-race")
			}
		}
	}
	args = append(args, "./cmd/bridge")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	require.NoError(t, err, "go %s\n%s", strings.Join(args, " "), out)
	return args[2]
}

// child is the bridge running as a separate process.
type child struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{} // closed when the process has been waited for
}

type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startChild(t *testing.T, bin string, cfg Config) *child {
	t.Helper()
	c := &child{out: &syncBuffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command(bin,
		"-local", cfg.Local, "-upstream", cfg.Upstream, "-spool", cfg.SpoolDir,
		"-topics", strings.Join(cfg.Topics, ","), "-client-id", cfg.ClientID,
		"-retry", cfg.RetryInterval.String())
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	require.NoError(t, c.cmd.Start())
	go func() {
		defer close(c.exited)
		_ = c.cmd.Wait()
	}()
	t.Cleanup(func() {
		c.signal(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("bridge process output:\n%s", c.out)
		}
	})
	return c
}

// signal sends sig to the child by its PID and waits for it to exit.
func (c *child) signal(sig syscall.Signal) {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = syscall.Kill(c.cmd.Process.Pid, sig)
	<-c.exited
}

func testSIGKILL(t *testing.T) {
	bin := buildBridge(t)
	local := startBroker(t, "127.0.0.1:0", newWatch())
	cfg := bridgeConfig(local.addr, freeAddr(t), t.TempDir())

	// First life: the upstream is down, so everything accepted is spooled.
	first := startChild(t, bin, cfg)
	local.watch.until(t, "the bridge to subscribe", first.exited, func(_, _ []string, s int) bool { return s > 0 })

	const total = 400
	pub := publisher(t, local.addr)
	published := make(chan error, 1)
	go func() {
		defer close(published)
		for i := range total {
			tok := pub.Publish("sensors/t1", 1, false, fmt.Sprintf("reading-%04d", i))
			if !tok.WaitTimeout(waitLong) || tok.Error() != nil {
				published <- fmt.Errorf("publish %d: %v", i, tok.Error())
				return
			}
		}
	}()
	// Kill it mid-stream, once it has accepted a fair number.
	local.watch.until(t, "100 messages accepted", first.exited, func(a, _ []string, _ int) bool { return len(a) >= 100 })
	first.signal(syscall.SIGKILL)
	acceptedBeforeKill, _, _ := local.watch.snapshot()
	t.Logf("killed the bridge (pid %d) after it accepted %d messages", first.cmd.Process.Pid, len(acceptedBeforeKill))

	// The rest of the stream goes to the local broker while the bridge is
	// dead: it keeps them for the bridge's persistent session. (We let the
	// publisher finish before the restart because mochi can lose a message
	// published in the very moment a session is taken over by a new
	// connection; that is the broker's business, not the bridge's.)
	require.NoError(t, <-published)

	// Second life: the upstream is back.
	up := startBroker(t, cfg.Upstream, newWatch())
	second := startChild(t, bin, cfg)
	var want []string
	for i := range total {
		want = append(want, fmt.Sprintf("sensors/t1 reading-%04d", i))
	}
	up.watch.until(t, fmt.Sprintf("all %d messages upstream", total), second.exited, func(_, p []string, _ int) bool {
		return len(firstSeen(p)) >= total
	})

	accepted, _, _ := local.watch.snapshot()
	_, delivered, _ := up.watch.snapshot()
	got := map[string]bool{}
	for _, d := range delivered {
		got[d] = true
	}
	for _, a := range accepted {
		require.True(t, got["sensors/t1 "+a], "accepted %q was lost", a)
	}
	// The first life's messages come out of its spool, in the order it
	// accepted them.
	var replayed []string
	for _, d := range firstSeen(delivered) {
		if slices.Contains(acceptedBeforeKill, strings.TrimPrefix(d, "sensors/t1 ")) {
			replayed = append(replayed, strings.TrimPrefix(d, "sensors/t1 "))
		}
	}
	require.Equal(t, acceptedBeforeKill, replayed)
	assert.ElementsMatch(t, want, firstSeen(delivered))
	t.Logf("upstream received %d publishes for %d messages (%d duplicates)", len(delivered), total, len(delivered)-len(firstSeen(delivered)))

	second.signal(syscall.SIGTERM)
	require.Zero(t, second.cmd.ProcessState.ExitCode(), "a SIGTERM should stop the bridge cleanly")
}
