package store_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"floodgate/capstone/store"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// impls are the Store implementations every suite test runs against.
var impls = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"memory", func(t *testing.T) store.Store { return store.NewMemory() }},
	{"bolt", func(t *testing.T) store.Store {
		s, err := store.Open(filepath.Join(t.TempDir(), "floodgate.db"), store.Options{})
		require.NoError(t, err)
		return s
	}},
	{"bolt-group", func(t *testing.T) store.Store {
		s, err := store.Open(filepath.Join(t.TempDir(), "floodgate.db"), store.Options{GroupCommit: true})
		require.NoError(t, err)
		return s
	}},
}

// suite runs fn against each implementation, closing the store afterwards.
func suite(t *testing.T, fn func(t *testing.T, s store.Store)) {
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			s := impl.open(t)
			defer func() { _ = s.Close() }()
			fn(t, s)
		})
	}
}

func sampleSession(id string) store.Session {
	return store.Session{
		ClientID:        id,
		Clean:           false,
		ProtocolVersion: 5,
		ExpiryInterval:  3600,
		DisconnectedAt:  time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
		Subscriptions: []store.Subscription{
			{Filter: "sensors/+/temp", QoS: 1, NoLocal: true, Identifier: 7},
			{Filter: "$share/g/jobs/#", QoS: 2, RetainAsPublished: true, RetainHandling: 2},
		},
		Will: &store.Will{Message: store.Message{Topic: "status/" + id, Payload: []byte("gone"), QoS: 1, Retain: true}, DelayInterval: 30},
	}
}

func TestSessions(t *testing.T) {
	suite(t, func(t *testing.T, s store.Store) {
		_, err := s.LoadSession("a")
		require.ErrorIs(t, err, store.ErrNotFound)

		want := sampleSession("a")
		require.NoError(t, s.SaveSession(want))
		require.NoError(t, s.SaveSession(sampleSession("b")))
		got, err := s.LoadSession("a")
		require.NoError(t, err)
		assert.Equal(t, want, got)

		// Changing what was returned does not change the store.
		got.Subscriptions[0].QoS = 0
		again, err := s.LoadSession("a")
		require.NoError(t, err)
		assert.Equal(t, byte(1), again.Subscriptions[0].QoS)

		// Replace.
		want.Subscriptions = want.Subscriptions[:1]
		want.Will = nil
		require.NoError(t, s.SaveSession(want))
		got, err = s.LoadSession("a")
		require.NoError(t, err)
		assert.Equal(t, want, got)

		all, err := s.Sessions()
		require.NoError(t, err)
		require.Len(t, all, 2)
		assert.Equal(t, "a", all[0].ClientID)
		assert.Equal(t, "b", all[1].ClientID)

		require.NoError(t, s.DeleteSession("a"))
		require.NoError(t, s.DeleteSession("never-stored"))
		_, err = s.LoadSession("a")
		require.ErrorIs(t, err, store.ErrNotFound)

		require.ErrorIs(t, s.SaveSession(store.Session{}), store.ErrInvalid)
	})
}

func TestRetained(t *testing.T) {
	suite(t, func(t *testing.T, s store.Store) {
		exp := time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)
		m1 := store.Message{Topic: "b/1", Payload: []byte("one"), QoS: 1, Retain: true,
			PayloadFormat: 1, ContentType: "text/plain", ResponseTopic: "r", CorrelationData: []byte{1, 2},
			UserProperties: []store.UserProperty{{Key: "k", Value: "v"}}, ExpiresAt: exp}
		m2 := store.Message{Topic: "a/2", Payload: []byte("two"), Retain: true}
		require.NoError(t, s.SetRetained(m1))
		require.NoError(t, s.SetRetained(m2))
		got, err := s.Retained()
		require.NoError(t, err)
		assert.Equal(t, []store.Message{m2, m1}, got, "ordered by topic")

		// Replace, then delete with an empty payload [MQTT-3.3.1-10].
		m2.Payload = []byte("two again")
		require.NoError(t, s.SetRetained(m2))
		require.NoError(t, s.SetRetained(store.Message{Topic: "b/1"}))
		got, err = s.Retained()
		require.NoError(t, err)
		assert.Equal(t, []store.Message{m2}, got)

		require.ErrorIs(t, s.SetRetained(store.Message{Payload: []byte("x")}), store.ErrInvalid)
	})
}

func TestInFlightOrderAndUpdate(t *testing.T) {
	suite(t, func(t *testing.T, s store.Store) {
		// Packet identifiers wrap, so the order is the order of first Put,
		// not of the identifiers.
		ids := []uint16{65535, 1, 300, 2}
		for i, id := range ids {
			require.NoError(t, s.PutInFlight(store.InFlight{
				ClientID: "c", Direction: store.Outbound, PacketID: id, State: store.AwaitingAck,
				Message: store.Message{Topic: "t", Payload: []byte(fmt.Sprint(i)), QoS: 2},
			}))
		}
		require.NoError(t, s.PutInFlight(store.InFlight{ClientID: "c", Direction: store.Inbound, PacketID: 1,
			State: store.AwaitingRel, Message: store.Message{Topic: "in", Payload: []byte("q2"), QoS: 2}}))
		require.NoError(t, s.PutInFlight(store.InFlight{ClientID: "other", Direction: store.Outbound, PacketID: 9,
			State: store.AwaitingAck}))
		require.NoError(t, s.PutInFlight(store.InFlight{ClientID: "c", Direction: store.Outbound, PacketID: 7,
			State: store.Queued, Message: store.Message{Topic: "later", Payload: []byte("q"), QoS: 1}}))
		require.NoError(t, s.DeleteInFlight("c", store.Outbound, 7))

		// PUBREC came for 65535: the update keeps its place.
		require.NoError(t, s.PutInFlight(store.InFlight{ClientID: "c", Direction: store.Outbound, PacketID: 65535,
			State: store.AwaitingComp}))
		require.NoError(t, s.DeleteInFlight("c", store.Outbound, 300))
		require.NoError(t, s.DeleteInFlight("c", store.Outbound, 4242))

		got, err := s.InFlight("c")
		require.NoError(t, err)
		require.Len(t, got, 4)
		assert.Equal(t, uint16(65535), got[0].PacketID)
		assert.Equal(t, store.AwaitingComp, got[0].State)
		assert.Equal(t, uint16(1), got[1].PacketID)
		assert.Equal(t, store.Outbound, got[1].Direction)
		assert.Equal(t, []byte("1"), got[1].Message.Payload)
		assert.Equal(t, uint16(2), got[2].PacketID)
		assert.Equal(t, store.Inbound, got[3].Direction)
		assert.Equal(t, store.AwaitingRel, got[3].State)

		// Deleting the session deletes its in-flight messages, only its.
		require.NoError(t, s.SaveSession(store.Session{ClientID: "c"}))
		require.NoError(t, s.DeleteSession("c"))
		got, err = s.InFlight("c")
		require.NoError(t, err)
		assert.Empty(t, got)
		other, err := s.InFlight("other")
		require.NoError(t, err)
		assert.Len(t, other, 1)

		require.ErrorIs(t, s.PutInFlight(store.InFlight{ClientID: "c", Direction: store.Outbound}), store.ErrInvalid)
		require.ErrorIs(t, s.PutInFlight(store.InFlight{PacketID: 1, Direction: store.Outbound}), store.ErrInvalid)
		require.ErrorIs(t, s.PutInFlight(store.InFlight{ClientID: "c", PacketID: 1}), store.ErrInvalid)
	})
}

func TestClosed(t *testing.T) {
	suite(t, func(t *testing.T, s store.Store) {
		require.NoError(t, s.Close())
		require.ErrorIs(t, s.Close(), store.ErrClosed)
		require.ErrorIs(t, s.SaveSession(store.Session{ClientID: "a"}), store.ErrClosed)
		_, err := s.LoadSession("a")
		require.ErrorIs(t, err, store.ErrClosed)
		_, err = s.Retained()
		require.ErrorIs(t, err, store.ErrClosed)
		require.ErrorIs(t, s.PutInFlight(store.InFlight{ClientID: "c", Direction: store.Outbound, PacketID: 1}), store.ErrClosed)
	})
}

func TestSessionExpired(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	s := store.Session{ProtocolVersion: 5, ExpiryInterval: 60, DisconnectedAt: at}
	assert.False(t, s.Expired(at.Add(59*time.Second)))
	assert.True(t, s.Expired(at.Add(60*time.Second)))
	s.ExpiryInterval = 0xFFFFFFFF
	assert.False(t, s.Expired(at.Add(1000*time.Hour)))
	s = store.Session{ProtocolVersion: 5, ExpiryInterval: 60}
	assert.False(t, s.Expired(at), "connected sessions do not expire")
	s = store.Session{ProtocolVersion: 4, DisconnectedAt: at}
	assert.False(t, s.Expired(at.Add(time.Hour)), "a 3.1.1 persistent session never expires")
}

// TestBoltReopen writes every kind of record, closes the file and opens it
// again: what a broker restart sees.
func TestBoltReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "floodgate.db")
	s, err := store.Open(path, store.Options{})
	require.NoError(t, err)
	sess := sampleSession("persist")
	ret := store.Message{Topic: "r", Payload: []byte("kept"), Retain: true}
	fl := store.InFlight{ClientID: "persist", Direction: store.Outbound, PacketID: 10, State: store.AwaitingAck,
		Message: store.Message{Topic: "t", Payload: []byte("q1"), QoS: 1}, SentAt: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}
	require.NoError(t, s.SaveSession(sess))
	require.NoError(t, s.SetRetained(ret))
	require.NoError(t, s.PutInFlight(fl))
	require.NoError(t, s.Close())

	s, err = store.Open(path, store.Options{})
	require.NoError(t, err)
	defer s.Close()
	got, err := s.LoadSession("persist")
	require.NoError(t, err)
	assert.Equal(t, sess, got)
	rs, err := s.Retained()
	require.NoError(t, err)
	assert.Equal(t, []store.Message{ret}, rs)
	fs, err := s.InFlight("persist")
	require.NoError(t, err)
	assert.Equal(t, []store.InFlight{fl}, fs)

	// A new in-flight message after the reopen still sorts after the old.
	require.NoError(t, s.PutInFlight(store.InFlight{ClientID: "persist", Direction: store.Outbound, PacketID: 1, State: store.AwaitingAck}))
	fs, err = s.InFlight("persist")
	require.NoError(t, err)
	require.Len(t, fs, 2)
	assert.Equal(t, uint16(10), fs[0].PacketID)
}

func TestBoltOpenErrors(t *testing.T) {
	_, err := store.Open(filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"), store.Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "store open")
	assert.False(t, errors.Is(err, store.ErrClosed))
}

// TestConcurrentWriters: eight clients put and acknowledge in-flight
// messages at once; each ends with exactly the ones it did not delete, in
// its own order.
func TestConcurrentWriters(t *testing.T) {
	suite(t, func(t *testing.T, s store.Store) {
		var wg sync.WaitGroup
		for c := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("client-%d", c)
				for p := uint16(1); p <= 30; p++ {
					if err := s.PutInFlight(store.InFlight{ClientID: id, Direction: store.Outbound, PacketID: p, State: store.AwaitingAck}); err != nil {
						t.Error(err)
						return
					}
					if p%3 != 0 {
						if err := s.DeleteInFlight(id, store.Outbound, p); err != nil {
							t.Error(err)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		for c := range 8 {
			fs, err := s.InFlight(fmt.Sprintf("client-%d", c))
			require.NoError(t, err)
			require.Len(t, fs, 10)
			for i, f := range fs {
				assert.Equal(t, uint16(3*(i+1)), f.PacketID)
			}
		}
	})
}
