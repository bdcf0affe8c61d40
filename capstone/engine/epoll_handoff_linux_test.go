//go:build linux && floodgate.solution

package engine

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"floodgate/capstone/session"
	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A loop with a private table that finds it full (EMFILE) takes the
// listener out of its set, stops accepting (no retry on a tick: no spin)
// and hands the connection waiting on the listener to a peer with room,
// which nothing else wakes for it here: loop b accepts only when nudged.
func TestEpoll_FullLoopHandsOff(t *testing.T) {
	const wait = 5 * time.Second
	ln, lfd := listenDup(t)

	hub := &countingHub{}
	newConn := func(wake func()) (*session.Conn, func()) {
		return session.NewDriven(&session.Config{}, hub, mqtt.Success, wake), nil
	}
	cfg := EpollConfig{Loops: 2, PrivateFDs: true, Tick: time.Millisecond}
	cfg.fill()
	var loops []*loop
	for i := range 2 {
		l, err := newLoop(cfg, lfd, newConn)
		require.NoError(t, err)
		defer l.closeFDs()
		l.peers, l.idx = &loops, i
		loops = append(loops, l)
	}
	a, b := loops[0], loops[1]
	var full atomic.Int32
	a.acceptFD = func(int) (int, error) { full.Add(1); return -1, unix.EMFILE }
	// b keeps accepting on a nudge, but the listener no longer wakes it.
	b.unlisten()
	b.listening = true

	ran := make(chan error, 2)
	for _, l := range loops {
		go func() { ran <- l.run() }()
	}
	defer func() {
		for _, l := range loops {
			l.requestStop()
		}
		for range loops {
			require.NoError(t, <-ran)
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
	var ack [4]byte
	_, err = nc.Read(ack[:])
	require.NoError(t, err, "no CONNACK: the connection stayed in the listen queue")
	require.Equal(t, [4]byte{0x20, 2, 0, 0}, ack)
	require.Equal(t, int64(1), hub.opened.Load())
	require.True(t, a.full.Load(), "the full loop says so")
	// With a 1 ms tick a loop that retried on ticks would have tried
	// again many times by now; a full one waits for a close of its own.
	require.Equal(t, int32(1), full.Load(), "accept calls on the full loop")
}
