//go:build linux && floodgate.solution

package engine

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"floodgate/capstone/router"
	"floodgate/capstone/session"
	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/stretchr/testify/require"
)

// blockingHub is a session.Hub whose Open waits until release is closed,
// so a test can hold a CONNECT in flight; Closed reports the client id.
type blockingHub struct {
	entered chan struct{} // closed when Open starts
	release chan struct{}
	closed  chan string // Closed's client id
}

func (h *blockingHub) Open(c *session.Conn, id string, clean bool) (*session.State, bool) {
	close(h.entered)
	<-h.release
	return session.NewState(id, 16, func(string) {}), false
}
func (h *blockingHub) Route(*router.Message) bool            { return false }
func (h *blockingHub) Router() *router.Router                { return nil }
func (h *blockingHub) Retain(*router.Message)                {}
func (h *blockingHub) Changed(*session.Conn, *session.State) {}
func (h *blockingHub) Count(string)                          {}
func (h *blockingHub) Closed(c *session.Conn, _ *session.State, _ *mqtt.Will) {
	h.closed <- c.ClientID()
}

// When a loop's epoll_wait fails while a connection's CONNECT runs on its
// goroutine, the loop still finishes that connection once Connect returns:
// the session is handed back to the broker (Hub.Closed), the engine's
// release runs, and the client sees its socket close; then run returns the
// error. The failure is made by closing the loop's epoll descriptor.
func TestEpoll_FailureFinishesRunningConnect(t *testing.T) {
	const wait = 5 * time.Second
	ln, lfd := listenDup(t)

	hub := &blockingHub{entered: make(chan struct{}), release: make(chan struct{}), closed: make(chan string, 1)}
	var released atomic.Int32
	newConn := func(wake func()) (*session.Conn, func()) {
		return session.NewDriven(&session.Config{}, hub, mqtt.Success, wake), func() { released.Add(1) }
	}
	cfg := EpollConfig{Loops: 1}
	cfg.fill()
	l, err := newLoop(cfg, lfd, newConn)
	require.NoError(t, err)
	defer l.closeFDs()
	ran := make(chan error, 1)
	go func() { ran <- l.run() }()
	defer func() {
		select {
		case <-hub.release:
		default:
			close(hub.release) // a failed assertion must not leave Open waiting
		}
	}()

	nc, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.SetDeadline(time.Now().Add(wait)))
	buf, err := (&mqtt.Connect{ClientID: "c", CleanStart: true}).AppendTo(nil, mqtt.V311)
	require.NoError(t, err)
	_, err = nc.Write(buf)
	require.NoError(t, err)
	select {
	case <-hub.entered:
	case <-time.After(wait):
		t.Fatal("the CONNECT never reached the hub")
	}

	require.NoError(t, l.epf.Close()) // the loop's epoll_wait fails from now on
	close(hub.release)
	select {
	case err := <-ran:
		require.ErrorContains(t, err, "epoll_wait")
	case <-time.After(wait):
		t.Fatal("run did not return after epoll failed")
	}
	select {
	case id := <-hub.closed:
		require.Equal(t, "c", id)
	default:
		t.Fatal("the connection whose CONNECT was running was never finished (no Hub.Closed)")
	}
	require.Equal(t, int32(1), released.Load(), "the engine's release")
	_, err = io.ReadAll(nc) // EOF, not a timeout: the socket was closed
	require.NoError(t, err)
}
