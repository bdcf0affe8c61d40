//go:build linux && floodgate.solution

package engine

import (
	"net"
	"testing"
	"time"

	"floodgate/capstone/session"
	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A connection stays in its loop's epoll set while its CONNECT runs (no
// system calls to take it out and put it back). A packet the client sends
// before its CONNACK makes the loop take the socket out (pause: the
// level-triggered set would report it in a spin); once Connect returns
// the socket goes back, and the packet is answered after the CONNACK.
func TestEpoll_PacketWhileConnectRuns(t *testing.T) {
	const wait = 5 * time.Second
	ln, lfd := listenDup(t)

	hub := &blockingHub{entered: make(chan struct{}), release: make(chan struct{}), closed: make(chan string, 1)}
	newConn := func(wake func()) (*session.Conn, func()) {
		return session.NewDriven(&session.Config{}, hub, mqtt.Success, wake), nil
	}
	cfg := EpollConfig{Loops: 1}
	cfg.fill()
	l, err := newLoop(cfg, lfd, newConn)
	require.NoError(t, err)
	defer l.closeFDs()
	paused := make(chan struct{}, 1)
	l.onPause = func() { paused <- struct{}{} }
	ran := make(chan error, 1)
	go func() { ran <- l.run() }()
	defer func() {
		l.requestStop()
		require.NoError(t, <-ran)
	}()
	released := false
	defer func() {
		if !released {
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
	select {
	case <-paused:
		t.Fatal("the socket left the set with nothing to wait for")
	default:
	}
	ping, err := (&mqtt.PingReq{}).AppendTo(nil, mqtt.V311)
	require.NoError(t, err)
	_, err = nc.Write(ping)
	require.NoError(t, err)
	select {
	case <-paused:
	case <-time.After(wait):
		t.Fatal("the loop never took the socket out of its set")
	}
	close(hub.release)
	released = true

	r := mqtt.NewReader(nc, mqtt.Config{Version: mqtt.V311})
	p, err := r.ReadPacket()
	require.NoError(t, err)
	require.IsType(t, &mqtt.Connack{}, p)
	p, err = r.ReadPacket()
	require.NoError(t, err)
	require.IsType(t, &mqtt.PingResp{}, p)
	nc.Close()
	select {
	case id := <-hub.closed:
		require.Equal(t, "c", id)
	case <-time.After(wait):
		t.Fatal("the connection was never finished")
	}
}

// ServeEpoll sets TCP_NODELAY on the listener once instead of on every
// accepted socket, because Linux copies it to the sockets it accepts
// (each loop still checks its first one, and falls back if not).
func TestNoDelayInheritedFromListener(t *testing.T) {
	ln, lfd := listenDup(t)
	require.NoError(t, unix.SetsockoptInt(lfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1))
	require.NoError(t, unix.SetNonblock(lfd, false))
	defer unix.SetNonblock(lfd, true)

	nc, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer nc.Close()
	fd, err := accept4(lfd)
	require.NoError(t, err)
	defer unix.Close(fd)
	v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
	require.NoError(t, err)
	require.Equal(t, 1, v, "TCP_NODELAY on the accepted socket")
}
