//go:build linux

package engine

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// listenDup listens on 127.0.0.1:0 and returns the listener with a
// duplicate of its descriptor, the way ServeEpoll's loops accept on it;
// both are closed when the test ends.
func listenDup(t *testing.T) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	rc, err := ln.(*net.TCPListener).SyscallConn()
	require.NoError(t, err)
	lfd := -1
	require.NoError(t, rc.Control(func(fd uintptr) { lfd, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }))
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(lfd) })
	return ln, lfd
}
