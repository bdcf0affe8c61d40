//go:build linux

package engine

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// The epoll engine serves TCP listeners only: anything else is a clear
// error, and the listener is closed.
func TestServeEpoll_TCPOnly(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	require.NoError(t, err)
	err = ServeEpoll(context.Background(), ln, EpollConfig{}, nil)
	require.ErrorContains(t, err, "want a TCP listener")
	_, err = ln.Accept()
	require.ErrorIs(t, err, net.ErrClosed)
}

// With its context already done, ServeEpoll starts its loops, stops them
// and returns nil, its listener closed.
func TestServeEpoll_StopsWithContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, ServeEpoll(ctx, ln, EpollConfig{Loops: 3}, nil))
	_, err = ln.Accept()
	require.ErrorIs(t, err, net.ErrClosed)
}
