package cost

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// These are sanity checks of the instrument, not of the figures: the
// figures are the experiment's output (see README.md).

func TestGoroutinesAreParkedOnTheirOwnStacks(t *testing.T) {
	c, err := Goroutines(5000)
	require.NoError(t, err)
	assert.Equal(t, 5000, c.N)
	assert.LessOrEqual(t, c.Threads, 4, "parked goroutines need no threads of their own")
	// A new goroutine's stack starts at 2 KiB; the race detector and
	// adaptive stack sizing may start it larger, but never smaller.
	// Other goroutines of the test binary come and go between the two
	// samples, so allow a little noise below 2 KiB.
	assert.GreaterOrEqual(t, c.Stack, 1800.0)
	assert.Less(t, c.Stack, 16384.0)
	assert.Greater(t, c.Heap, 0.0, "each goroutine has a g struct on the heap")
}

func TestLockedGoroutinesEachTakeAThread(t *testing.T) {
	c, err := Threads(16)
	require.NoError(t, err)
	assert.Greater(t, c.ThreadsHeld, 16, "a goroutine locked to its thread and blocked keeps that thread")
}

func TestSample(t *testing.T) {
	s, err := TakeSample()
	require.NoError(t, err)
	assert.Positive(t, s.Threads)
	assert.Positive(t, s.VmRSS)
	assert.GreaterOrEqual(t, s.VmSize, s.VmRSS)
	lim, err := StackLimit()
	require.NoError(t, err)
	assert.Positive(t, lim)
}

func TestBadCounts(t *testing.T) {
	_, err := Goroutines(0)
	assert.ErrorIs(t, err, ErrN)
	_, err = Threads(-1)
	assert.ErrorIs(t, err, ErrN)
}
