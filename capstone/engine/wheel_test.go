package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type fakeTimed struct {
	timed
	dl      time.Time
	expired []time.Time
}

func (f *fakeTimed) deadline() time.Time  { return f.dl }
func (f *fakeTimed) expire(now time.Time) { f.expired = append(f.expired, now) }

func newFake(dl time.Time) *fakeTimed {
	f := &fakeTimed{dl: dl}
	f.timed = timed{slot: -1, owner: f}
	return f
}

// The wheel expires an entry in the first tick that ends after its
// deadline, moves an entry whose deadline moved later without expiring it,
// holds deadlines more than a turn away, and forgets removed entries. Time
// is passed in: no sleeping.
func TestWheel_Deadlines(t *testing.T) {
	t0 := time.Unix(1000, 0)
	w := newWheel(10*time.Millisecond, 8, t0) // one turn: 80 ms
	soon := newFake(t0.Add(25 * time.Millisecond))
	moved := newFake(t0.Add(15 * time.Millisecond))
	far := newFake(t0.Add(500 * time.Millisecond)) // six turns away
	gone := newFake(t0.Add(5 * time.Millisecond))
	none := newFake(time.Time{})
	for _, f := range []*fakeTimed{soon, moved, far, gone, none} {
		w.schedule(&f.timed, t0)
	}
	require.Equal(t, 4, w.n, "a zero deadline is in no slot")
	w.remove(&gone.timed)
	moved.dl = t0.Add(45 * time.Millisecond) // a read pushed it back; no list work

	w.advance(t0.Add(20 * time.Millisecond))
	assert.Empty(t, soon.expired)
	assert.Empty(t, moved.expired)
	w.advance(t0.Add(30 * time.Millisecond))
	require.Len(t, soon.expired, 1, "deadline 25 ms: expired by the tick ending at 30 ms")
	assert.Empty(t, moved.expired, "its deadline moved to 45 ms")
	w.advance(t0.Add(50 * time.Millisecond))
	require.Len(t, moved.expired, 1)
	w.advance(t0.Add(490 * time.Millisecond))
	assert.Empty(t, far.expired, "500 ms is not there yet, however many turns passed")
	w.advance(t0.Add(510 * time.Millisecond))
	require.Len(t, far.expired, 1)
	assert.Empty(t, gone.expired, "removed")
	assert.Equal(t, 0, w.n)
	assert.Len(t, soon.expired, 1, "an expired entry is out of the wheel")
}
