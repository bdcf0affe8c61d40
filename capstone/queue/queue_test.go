package queue

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestQueue_BoundedNeverBlocks(t *testing.T) {
	q := New[int](2)
	require.NoError(t, q.Push(1))
	require.NoError(t, q.Push(2))
	assert.ErrorIs(t, q.Push(3), ErrFull)
	<-q.Ready()
	assert.Equal(t, []int{1, 2}, q.Drain(nil))
	assert.Equal(t, 2, q.HighWater())
	require.NoError(t, q.Push(4))
	q.Close()
	assert.ErrorIs(t, q.Push(5), ErrClosed)
	assert.Equal(t, []int{4}, q.Drain(nil), "queued items survive Close")
}
