package queue

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestQueue_BoundedNeverBlocks(t *testing.T) {
	q := New[int](2, 0)
	require.NoError(t, q.Push(1, 1))
	require.NoError(t, q.Push(2, 1))
	assert.ErrorIs(t, q.Push(3, 1), ErrFull)
	<-q.Ready()
	assert.Equal(t, []int{1, 2}, q.Drain(nil))
	items, _ := q.HighWater()
	assert.Equal(t, 2, items)
	require.NoError(t, q.Push(4, 1))
	q.Close()
	assert.ErrorIs(t, q.Push(5, 1), ErrClosed)
	assert.Equal(t, []int{4}, q.Drain(nil), "queued items survive Close")
}

// The bytes budget: many small items fit where the item count alone would
// have refused them long before; the bytes refuse the item that would go
// over, whatever the count, and a drain makes room again.
func TestQueue_BytesBudget(t *testing.T) {
	q := New[int](0, 1000) // item cap: DefaultCapacity
	assert.Equal(t, DefaultCapacity, q.Cap())
	for i := range 100 {
		require.NoError(t, q.Push(i, 10), "item %d", i)
	}
	assert.Equal(t, 1000, q.Bytes())
	assert.ErrorIs(t, q.Push(100, 1), ErrOverBudget)
	assert.NotErrorIs(t, q.Push(100, 1), ErrFull, "the two limits are told apart")
	assert.Len(t, q.Drain(nil), 100)
	assert.Equal(t, 0, q.Bytes())
	require.NoError(t, q.Push(0, 1000), "an item of the whole budget fits an empty queue")
	assert.NoError(t, q.Push(1, 0), "a zero-size item counts against the item cap only")
	items, bytes := q.HighWater()
	assert.Equal(t, 100, items)
	assert.Equal(t, 1000, bytes)

	big := New[int](0, 10)
	assert.ErrorIs(t, big.Push(1, 11), ErrOverBudget, "an item bigger than the budget never fits")

	none := New[int](3, -1)
	require.NoError(t, none.Push(1, 1<<40), "a negative budget: the item cap only")
	assert.Equal(t, -1, none.MaxBytes())
}

// Ready is made on demand: a token is waiting in it for items pushed
// before, and Close wakes the consumer.
func TestQueue_ReadyLazy(t *testing.T) {
	var q Queue[string]
	q.Init(0, 0)
	assert.Equal(t, DefaultMaxBytes, q.MaxBytes())
	require.NoError(t, q.Push("a", 1))
	r := q.Ready()
	select {
	case <-r:
	default:
		t.Fatal("no token for an item pushed before Ready")
	}
	assert.Equal(t, []string{"a"}, q.Drain(nil))
	select {
	case <-r:
		t.Fatal("a token with nothing pushed")
	default:
	}
	assert.False(t, q.Closed())
	q.Close()
	assert.True(t, q.Closed())
	select {
	case <-r:
	default:
		t.Fatal("Close did not wake the consumer")
	}
}

// Drain lets a large burst's array go, so an idle queue holds none.
func TestQueue_DrainReleasesBurst(t *testing.T) {
	q := New[int](0, -1)
	for i := range 1000 {
		require.NoError(t, q.Push(i, 1))
	}
	out := q.Drain(nil)
	require.Len(t, out, 1000)
	assert.Equal(t, 999, out[999])
	assert.Nil(t, q.items)
}

// Take hands the caller the queue's array and leaves none behind.
func TestQueue_Take(t *testing.T) {
	q := New[int](0, 100)
	require.NoError(t, q.Push(1, 10))
	require.NoError(t, q.Push(2, 10))
	assert.Equal(t, []int{1, 2}, q.Take())
	assert.Nil(t, q.items, "an idle queue holds no array")
	assert.Zero(t, q.Bytes())
	assert.Empty(t, q.Take())
	require.NoError(t, q.Push(3, 100), "the budget is free again")
}
