package store_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"floodgate/capstone/store"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gated wraps a Store: Apply counts transactions, can be held at a gate
// (it reports each entry on entered), and can be made to fail.
type gated struct {
	store.Store
	entered chan int // the size of each batch Apply is given, before it waits

	mu      sync.Mutex
	gate    chan struct{} // nil: open
	fail    error
	applies int
}

func newGated(s store.Store) *gated { return &gated{Store: s, entered: make(chan int, 100)} }

func (g *gated) Apply(cs []store.Change) error {
	g.entered <- len(cs)
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	g.mu.Lock()
	g.applies++
	fail := g.fail
	g.mu.Unlock()
	if fail != nil {
		return fail
	}
	return g.Store.Apply(cs)
}

func (g *gated) close() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *gated) open() {
	g.mu.Lock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
	g.mu.Unlock()
}

func (g *gated) setFail(err error) {
	g.mu.Lock()
	g.fail = err
	g.mu.Unlock()
}

func (g *gated) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.applies
}

func put(id uint16) store.Change {
	return store.Change{Op: store.OpPutInFlight, InFlight: store.InFlight{ClientID: "c", Direction: store.Outbound,
		PacketID: id, State: store.AwaitingAck, Message: store.Message{Topic: "t", Payload: []byte("p"), QoS: 1}}}
}

// waitCh returns a channel that receives Wait's outcome for (from, to].
func waitCh(w *store.Writer, from, to uint64) <-chan bool {
	ch := make(chan bool, 1)
	if ok, decided := w.Wait(from, to, func(ok bool) { ch <- ok }); decided {
		ch <- ok
	}
	return ch
}

// While one transaction commits, the changes submitted meanwhile wait, and
// the next transaction takes them all: 100 changes, 2 transactions.
func TestWriter_BatchesCoalesce(t *testing.T) {
	g := newGated(store.NewMemory())
	w := store.NewWriter(g, store.WriterConfig{})
	defer w.Close()
	g.close()
	first, err := w.Submit(put(1))
	require.NoError(t, err)
	require.Equal(t, 1, <-g.entered, "the first transaction holds the first change")
	for id := uint16(2); id <= 100; id++ {
		_, err := w.Submit(put(id))
		require.NoError(t, err)
	}
	last := w.Last()
	assert.Equal(t, first+99, last, "numbered in submission order")
	done := waitCh(w, 0, last)
	select {
	case <-done:
		t.Fatal("decided before any commit")
	default:
	}
	g.open()
	require.True(t, <-done)
	assert.Equal(t, 99, <-g.entered, "the second transaction takes every change that waited")
	assert.Equal(t, 2, g.count(), "transactions")
	fs, err := g.InFlight("c")
	require.NoError(t, err)
	assert.Len(t, fs, 100)
}

// A waiter is told only when its changes are committed; a failed
// transaction fails the waiters whose ranges it touches, and only those.
func TestWriter_WaitAndFailure(t *testing.T) {
	g := newGated(store.NewMemory())
	var failures []int
	var mu sync.Mutex
	w := store.NewWriter(g, store.WriterConfig{OnError: func(err error, n int) {
		assert.ErrorIs(t, err, store.ErrBatch)
		mu.Lock()
		failures = append(failures, n)
		mu.Unlock()
	}})
	defer w.Close()

	g.close()
	a, _ := w.Submit(put(1))
	<-g.entered
	okA := waitCh(w, a-1, a)
	g.setFail(errors.New("disk on fire"))
	g.open()
	assert.False(t, <-okA, "the failed change's waiter")
	w.Flush()

	g.setFail(nil)
	b, _ := w.Submit(put(2))
	okB := waitCh(w, b-1, b)
	assert.True(t, <-okB, "a later change commits")
	assert.False(t, <-waitCh(w, 0, b), "a range that includes the failure stays failed")
	ok, decided := w.Wait(a, b, nil)
	assert.True(t, decided && ok, "a range after the failure is fine")
	mu.Lock()
	assert.Equal(t, []int{1}, failures)
	mu.Unlock()
	fs, err := g.InFlight("c")
	require.NoError(t, err)
	require.Len(t, fs, 1)
	assert.Equal(t, uint16(2), fs[0].PacketID, "the failed change was not kept")
}

// Close commits what is queued, even behind a slow transaction, and then
// refuses changes; the writer goroutine has ended when it returns (goleak).
func TestWriter_CloseDrains(t *testing.T) {
	g := newGated(store.NewMemory())
	w := store.NewWriter(g, store.WriterConfig{})
	g.close()
	for id := uint16(1); id <= 50; id++ {
		_, err := w.Submit(put(id))
		require.NoError(t, err)
	}
	<-g.entered
	closed := make(chan struct{})
	go func() { w.Close(); close(closed) }()
	g.open()
	<-closed
	fs, err := g.InFlight("c")
	require.NoError(t, err)
	assert.Len(t, fs, 50, "every queued change was committed")
	_, err = w.Submit(put(51))
	assert.ErrorIs(t, err, store.ErrClosed)
	w.Close() // twice: no-op
}

// Busy reports a full queue; Submit still takes the change (it never
// drops one); an invalid change is refused at once.
func TestWriter_BusyAndInvalid(t *testing.T) {
	g := newGated(store.NewMemory())
	w := store.NewWriter(g, store.WriterConfig{QueueSize: 3})
	defer w.Close()
	g.close()
	_, _ = w.Submit(put(1))
	<-g.entered // taken by the writer: the queue is empty again
	for id := uint16(2); id <= 3; id++ {
		_, _ = w.Submit(put(id))
	}
	assert.False(t, w.Busy(), "2 queued, room for 3")
	_, err := w.Submit(put(4))
	require.NoError(t, err)
	assert.True(t, w.Busy(), "3 queued")
	_, err = w.Submit(put(5))
	require.NoError(t, err, "a change is never dropped")
	_, err = w.Submit(store.Change{Op: store.OpPutInFlight})
	assert.ErrorIs(t, err, store.ErrInvalid)
	g.open()
	w.Flush()
	assert.False(t, w.Busy())
}

// Apply is all or nothing, on each implementation.
func TestApply(t *testing.T) {
	suite(t, func(t *testing.T, s store.Store) {
		require.NoError(t, s.Apply([]store.Change{
			{Op: store.OpSaveSession, Session: sampleSession("a")},
			{Op: store.OpSetRetained, Message: store.Message{Topic: "r", Payload: []byte("x")}},
			put(1), put(2),
			{Op: store.OpDeleteInFlight, InFlight: store.InFlight{ClientID: "c", Direction: store.Outbound, PacketID: 1}},
		}))
		_, err := s.LoadSession("a")
		require.NoError(t, err)
		rs, err := s.Retained()
		require.NoError(t, err)
		assert.Len(t, rs, 1)
		fs, err := s.InFlight("c")
		require.NoError(t, err)
		require.Len(t, fs, 1)
		assert.Equal(t, uint16(2), fs[0].PacketID)

		err = s.Apply([]store.Change{{Op: store.OpDeleteSession, ClientID: "a"}, {Op: store.OpSetRetained}})
		assert.ErrorIs(t, err, store.ErrInvalid)
		_, err = s.LoadSession("a")
		assert.NoError(t, err, "nothing of a refused batch is applied")
		require.NoError(t, s.Apply([]store.Change{{Op: store.OpDeleteSession, ClientID: "c"}}))
		fs, err = s.InFlight("c")
		require.NoError(t, err)
		assert.Empty(t, fs, "deleting a session deletes its in-flight messages")
	})
}

func ExampleWriter() {
	w := store.NewWriter(store.NewMemory(), store.WriterConfig{})
	defer w.Close()
	from := w.Last()
	to, _ := w.Submit(store.Change{Op: store.OpSetRetained,
		Message: store.Message{Topic: "status", Payload: []byte("up")}})
	done := make(chan bool, 1)
	if ok, decided := w.Wait(from, to, func(ok bool) { done <- ok }); decided {
		done <- ok
	}
	fmt.Println("committed:", <-done)
	// Output: committed: true
}

// One change the store refuses (here a retained topic longer than bbolt's
// 32,768-byte key limit, which an MQTT topic of up to 65,535 bytes can be)
// fails alone: the other changes of its transaction are applied again one
// by one and commit, so one client's bad change does not withhold the
// acknowledgements of the others that happened to share its batch.
func TestWriter_BadChangeFailsAlone(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "w.db"), store.Options{NoSync: true})
	require.NoError(t, err)
	defer st.Close()
	g := newGated(st)
	var failed []int
	w := store.NewWriter(g, store.WriterConfig{OnError: func(err error, n int) { failed = append(failed, n) }})
	defer w.Close()

	g.close()
	first, _ := w.Submit(put(1))
	<-g.entered // held in a transaction: the next four queue up behind it
	a, _ := w.Submit(put(2))
	bad, _ := w.Submit(store.Change{Op: store.OpSetRetained,
		Message: store.Message{Topic: strings.Repeat("t", 40000), Payload: []byte("x")}})
	c, _ := w.Submit(put(3))
	d, _ := w.Submit(store.Change{Op: store.OpSetRetained, Message: store.Message{Topic: "ok", Payload: []byte("y")}})
	okA, okBad, okC, okD := waitCh(w, first, a), waitCh(w, a, bad), waitCh(w, bad, c), waitCh(w, c, d)
	g.open()
	assert.True(t, <-okA, "a change before the bad one")
	assert.False(t, <-okBad, "the bad change")
	assert.True(t, <-okC, "a change after the bad one")
	assert.True(t, <-okD, "a retained message after the bad one")
	w.Flush()
	assert.Equal(t, []int{1}, failed, "one change failed")
	fs, err := st.InFlight("c")
	require.NoError(t, err)
	assert.Len(t, fs, 3)
	rs, err := st.Retained()
	require.NoError(t, err)
	require.Len(t, rs, 1)
	assert.Equal(t, "ok", rs[0].Topic)
}

// A change that is refused at Submit (invalid, or after Close) is numbered
// all the same and counts as failed: an acknowledgement whose range covers
// it is never sent, rather than sent for a change that was never stored.
func TestWriter_RefusedChangeFailsItsRange(t *testing.T) {
	g := newGated(store.NewMemory())
	w := store.NewWriter(g, store.WriterConfig{})

	from := w.Last()
	_, err := w.Submit(store.Change{Op: store.OpPutInFlight})
	require.ErrorIs(t, err, store.ErrInvalid)
	to := w.Last()
	require.Greater(t, to, from, "the invalid change is numbered")
	assert.False(t, <-waitCh(w, from, to), "the invalid change failed")
	next, err := w.Submit(put(1))
	require.NoError(t, err)
	assert.True(t, <-waitCh(w, to, next), "the next change commits")

	w.Close()
	from = w.Last()
	_, err = w.Submit(put(2))
	require.ErrorIs(t, err, store.ErrClosed)
	to = w.Last()
	require.Greater(t, to, from, "a change after Close is numbered")
	ok, decided := w.Wait(from, to, nil)
	assert.True(t, decided, "decided at once: nothing will ever commit it")
	assert.False(t, ok, "a change after Close failed")
	ok, decided = w.Wait(from-1, from, nil)
	assert.True(t, decided && ok, "the last change before Close committed")
}
