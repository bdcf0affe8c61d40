//go:build linux

package engine

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
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

// An idle connection's engine state is one econn: keep it small (its
// deadlines are int64 nanoseconds on the monotonic clock, not time.Time).
func TestEconnSize(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(econn{}), uintptr(176))
	now := time.Now()
	c := &econn{readDL: mono(now.Add(time.Second)), writeDL: mono(now.Add(2 * time.Second))}
	assert.True(t, c.deadline().Equal(now.Add(time.Second)), "deadline %v, want %v", c.deadline(), now.Add(time.Second))
	c.readDL = 0
	assert.True(t, c.deadline().Equal(now.Add(2*time.Second)))
	c.writeDL = 0
	assert.True(t, c.deadline().IsZero())
}
