//go:build floodgate.solution

package admission

import (
	"testing"
	"time"

	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The cap counts open connections; release gives the place back, once.
func TestAccept_CapAndRelease(t *testing.T) {
	var refused []string
	a, err := New(Config{MaxConns: 1, OnRefuse: func(r string) { refused = append(refused, r) }})
	require.NoError(t, err)
	now := time.Unix(0, 0)
	code, release := a.Accept(now)
	require.Equal(t, mqtt.Success, code)
	code2, _ := a.Accept(now)
	assert.Equal(t, mqtt.ServerBusy, code2)
	release()
	release()
	assert.Equal(t, int64(0), a.Open(), "a second release changes nothing")
	code, _ = a.Accept(now)
	assert.Equal(t, mqtt.Success, code)
	assert.Equal(t, map[string]uint64{ReasonConnCap: 1}, a.Counts())
	assert.Equal(t, []string{ReasonConnCap}, refused)
}

// Admit and Release: the cap without a closure per connection, and no
// allocation for an admitted connection (the epoll engine holds many).
func TestAdmit_CapAndReleaseAllocateNothing(t *testing.T) {
	a, err := New(Config{MaxConns: 2})
	require.NoError(t, err)
	now := time.Unix(0, 0)
	require.Equal(t, mqtt.Success, a.Admit(now))
	require.Equal(t, mqtt.Success, a.Admit(now))
	assert.Equal(t, mqtt.ServerBusy, a.Admit(now), "over the cap")
	assert.Equal(t, int64(2), a.Open(), "a refusal holds no place")
	a.Release()
	assert.Equal(t, int64(1), a.Open())
	assert.Equal(t, mqtt.Success, a.Admit(now), "a released place is free again")
	assert.Equal(t, map[string]uint64{ReasonConnCap: 1}, a.Counts())
	a.Release()
	a.Release()
	allocs := testing.AllocsPerRun(100, func() {
		if a.Admit(now) == mqtt.Success {
			a.Release()
		}
	})
	assert.Zero(t, allocs, "allocations per Admit and Release")
	assert.Equal(t, int64(0), a.Open())
}

// The accept rate refills with time (time is passed in).
func TestAccept_Rate(t *testing.T) {
	a, err := New(Config{AcceptRate: 1, AcceptBurst: 1})
	require.NoError(t, err)
	now := time.Unix(100, 0)
	code, _ := a.Accept(now)
	assert.Equal(t, mqtt.Success, code)
	code, _ = a.Accept(now)
	assert.Equal(t, mqtt.ConnectionRateExceeded, code)
	code, _ = a.Accept(now.Add(time.Second))
	assert.Equal(t, mqtt.Success, code)
}

// Publish and byte rates per client: 16 bytes of state, refusals named.
// (A refused client is disconnected, so what a refusal costs its buckets
// does not matter.)
func TestAllowPublish(t *testing.T) {
	a, err := New(Config{PublishRate: 10, PublishBurst: 2, ByteRate: 100, ByteBurst: 100})
	require.NoError(t, err)
	now := time.Unix(100, 0)
	var msgs Limits
	for range 2 {
		ok, _ := a.AllowPublish(&msgs, now, 1)
		require.True(t, ok)
	}
	ok, reason := a.AllowPublish(&msgs, now, 1)
	assert.False(t, ok)
	assert.Equal(t, ReasonPublishRate, reason)

	var bytes Limits
	ok, _ = a.AllowPublish(&bytes, now, 90)
	assert.True(t, ok)
	ok, reason = a.AllowPublish(&bytes, now, 20)
	assert.False(t, ok)
	assert.Equal(t, ReasonByteRate, reason)
	assert.Equal(t, map[string]uint64{ReasonPublishRate: 1, ReasonByteRate: 1}, a.Counts())
}

func TestNew_BadConfig(t *testing.T) {
	_, err := New(Config{MaxConns: -1})
	assert.ErrorIs(t, err, ErrBadConfig)
}
