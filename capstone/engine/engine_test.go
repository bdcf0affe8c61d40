package engine

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Serve runs one handler per connection, and when ctx ends it closes the
// listener, cancels the handlers' context and waits for them all.
func TestServe_OwnsItsGoroutines(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var running, finished atomic.Int32
	started := make(chan struct{}, 3)
	served := make(chan error, 1)
	go func() {
		served <- Serve(ctx, ln, func(ctx context.Context, nc net.Conn) {
			defer nc.Close()
			running.Add(1)
			started <- struct{}{}
			<-ctx.Done()
			finished.Add(1)
		})
	}()
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		defer c.Close()
	}
	for range 3 {
		<-started
	}
	cancel()
	select {
	case err := <-served:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	assert.Equal(t, int32(3), finished.Load(), "Serve returned before its handlers")
	_, err = net.Dial("tcp", ln.Addr().String())
	assert.Error(t, err, "the listener is closed")
}

// A listener closed by someone else ends Serve with an error naming it.
func TestServe_ListenerClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- Serve(context.Background(), ln, func(context.Context, net.Conn) {}) }()
	ln.Close()
	select {
	case err := <-served:
		require.Error(t, err)
		assert.Contains(t, err.Error(), "engine: accept")
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
}
