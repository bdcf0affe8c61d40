package engine

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// planFor settles the loops for a connection target: private tables only
// when the target does not fit one table, and then the fewest loops (at
// least GOMAXPROCS) whose tables hold it.
func TestPlanFor(t *testing.T) {
	for _, tc := range []struct {
		name           string
		cfg            EpollConfig
		limit          uint64
		open, procs    int
		private        bool
		loops, perLoop int
	}{
		{"no target", EpollConfig{}, 20000, 20, 2, false, 2, 20000 - 20 - 4 - FDSlack},
		{"fits one table", EpollConfig{MaxConns: 19000}, 20000, 20, 2, false, 2, 20000 - 20 - 4 - FDSlack},
		{"just over one table", EpollConfig{MaxConns: 19950}, 20000, 20, 2, true, 2, 20000 - 20 - 4 - FDSlack},
		{"a million", EpollConfig{MaxConns: 1_000_000}, 20000, 20, 2, true, 51, 20000 - 20 - 102 - FDSlack},
		{"a million, many cores", EpollConfig{MaxConns: 1_000_000}, 20000, 20, 64, true, 64, 20000 - 20 - 128 - FDSlack},
		{"forced, no target", EpollConfig{PrivateFDs: true}, 20000, 20, 2, true, 2, 20000 - 20 - 4 - FDSlack},
		{"loops given", EpollConfig{MaxConns: 1_000_000, Loops: 4}, 20000, 20, 2, true, 4, 20000 - 20 - 8 - FDSlack},
		{"the test child's", EpollConfig{MaxConns: 600}, 256, 10, 2, true, 4, 256 - 10 - 8 - FDSlack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planFor(tc.cfg, tc.limit, tc.open, tc.procs)
			require.NoError(t, err)
			assert.Equal(t, tc.private, p.PrivateFDs, "private tables")
			assert.Equal(t, tc.loops, p.Loops, "loops")
			assert.Equal(t, tc.perLoop, p.PerLoop, "per loop")
			assert.Equal(t, tc.limit, p.Limit)
			assert.Equal(t, int(tc.limit)-tc.perLoop, p.Reserve)
			if !p.PrivateFDs {
				assert.Equal(t, p.PerLoop, p.Cap)
				return
			}
			assert.Equal(t, p.Loops*p.PerLoop, p.Cap)
			if tc.cfg.Loops == 0 && tc.cfg.MaxConns > 0 {
				require.GreaterOrEqual(t, p.Cap, tc.cfg.MaxConns, "the loops hold the target")
				if p.Loops > tc.procs {
					fewer := p.Loops - 1
					assert.Less(t, fewer*(int(tc.limit)-(tc.open+2*fewer+FDSlack)), tc.cfg.MaxConns, "one loop fewer would not")
				}
			}
		})
	}
}

// The plan's log line says what the engine does, in the words.
func TestEpollPlan_String(t *testing.T) {
	p, err := planFor(EpollConfig{MaxConns: 1_000_000}, 20000, 20, 2)
	require.NoError(t, err)
	assert.Equal(t, "epoll engine: sharded: 51 loops with private fd tables, up to 19,814 connections each (RLIMIT_NOFILE 20000)", p.String())
	p, err = planFor(EpollConfig{}, 20000, 20, 2)
	require.NoError(t, err)
	assert.Equal(t, "epoll engine: 2 loops sharing one fd table, up to 19,912 connections (RLIMIT_NOFILE 20000)", p.String())
}

// A limit that leaves no room is a clear error.
func TestPlanFor_NoRoom(t *testing.T) {
	_, err := planFor(EpollConfig{MaxConns: 1000}, 64, 40, 2)
	require.ErrorIs(t, err, ErrFDLimit)
	_, err = planFor(EpollConfig{}, 64, 40, 2)
	require.ErrorIs(t, err, ErrFDLimit)
	// Every loop costs every table two descriptors: a target no number
	// of loops reaches is an error, not a plan that falls short.
	_, err = planFor(EpollConfig{MaxConns: 1 << 30}, 20000, 20, 2)
	require.ErrorIs(t, err, ErrFDLimit)
}
