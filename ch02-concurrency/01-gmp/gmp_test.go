package gmp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestThreadsIsSane(t *testing.T) {
	n, err := Threads()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, n, 1, "a running process has at least one thread")
	assert.Less(t, n, 10000, "the runtime's default thread limit is 10000")
	assert.GreaterOrEqual(t, ThreadCreate(), 1)
}

func TestStatesSeesChannelWait(t *testing.T) {
	block := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); <-block }()
	require.NoError(t, WaitParked("chan receive", 1, 5*time.Second))
	close(block)
	<-done
}

// Goroutines parked on the network share the threads the runtime already
// has: 200 of them must not cost anything close to 200 threads.
func TestNetworkParkingNeedsFewThreads(t *testing.T) {
	const n = 200
	server, client, err := Loopback(n)
	require.NoError(t, err)
	defer func() {
		for _, c := range client {
			c.Close()
		}
	}()
	p := ParkOnConns(server)
	defer p.Release()

	require.NoError(t, WaitParked("IO wait", n, 10*time.Second))
	threads, err := Threads()
	require.NoError(t, err)
	assert.Less(t, threads, n/2, "network waits are netpolled; they hold no thread")
	require.NoError(t, p.Release())
}

// A goroutine in a blocking read(2) holds its thread: n of them need at
// least n threads.
func TestSyscallParkingHoldsThreads(t *testing.T) {
	const n = 40
	p, err := ParkInPipeReads(n)
	require.NoError(t, err)
	defer p.Release()

	require.NoError(t, WaitParked("syscall", n, 10*time.Second))
	threads, err := Threads()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, threads, n, "each blocked syscall occupies an M")
	require.NoError(t, p.Release())
	assert.Zero(t, States()["syscall"], "Release wakes every reader")
}
