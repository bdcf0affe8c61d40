//go:build linux

package engine

import (
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// privateTable gives a locked thread its own copy of the descriptor table
// and closes, in that copy only, the TCP/IP sockets but the one to keep:
// Unix sockets, pipes and standard error stay, and the process's own
// table is untouched.
func TestPrivateTable(t *testing.T) {
	inet := func() (net.Listener, int) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		rc, err := ln.(*net.TCPListener).SyscallConn()
		require.NoError(t, err)
		dup := -1
		require.NoError(t, rc.Control(func(fd uintptr) { dup, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }))
		require.NoError(t, err)
		t.Cleanup(func() { unix.Close(dup) })
		return ln, dup
	}
	other, otherFD := inet()
	_, keepFD := inet()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(pair[0])
	defer unix.Close(pair[1])
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()

	open := func(fd int) bool {
		_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		return err == nil
	}
	type result struct {
		err                              error
		other, keep, unix0, pipe, stderr bool
	}
	got := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		var res result
		if res.err = privateTable(keepFD); res.err == nil {
			res.other, res.keep, res.unix0 = open(otherFD), open(keepFD), open(pair[0])
			res.pipe, res.stderr = open(int(w.Fd())), open(2)
		}
		got <- res
	}()
	res := <-got
	require.NoError(t, res.err)
	assert.False(t, res.other, "another TCP socket's copy is closed")
	assert.True(t, res.keep, "the socket to keep")
	assert.True(t, res.unix0, "a Unix socket")
	assert.True(t, res.pipe, "a pipe")
	assert.True(t, res.stderr, "standard error")

	assert.True(t, open(otherFD), "the process's table keeps its socket")
	nc, err := net.Dial("tcp", other.Addr().String())
	require.NoError(t, err, "the listener still listens")
	nc.Close()
}
