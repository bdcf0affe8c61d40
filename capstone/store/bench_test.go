package store_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"floodgate/capstone/store"

	"github.com/stretchr/testify/require"
)

// BenchmarkWrite measures one QoS 1 in-flight cycle as the broker does it
// per message: PutInFlight when the PUBLISH goes out, DeleteInFlight when
// the PUBACK comes back. Each is one committed transaction.
func BenchmarkWrite(b *testing.B) {
	payload := make([]byte, 256)
	for _, c := range []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"memory", func(b *testing.B) store.Store { return store.NewMemory() }},
		{"bolt-fsync", func(b *testing.B) store.Store {
			s, err := store.Open(filepath.Join(b.TempDir(), "b.db"), store.Options{})
			require.NoError(b, err)
			return s
		}},
		{"bolt-nosync", func(b *testing.B) store.Store {
			s, err := store.Open(filepath.Join(b.TempDir(), "b.db"), store.Options{NoSync: true})
			require.NoError(b, err)
			return s
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := c.open(b)
			defer s.Close()
			var id uint16
			for b.Loop() {
				id++
				if id == 0 {
					id = 1
				}
				f := store.InFlight{ClientID: "bench", Direction: store.Outbound, PacketID: id, State: store.AwaitingAck,
					Message: store.Message{Topic: "sensors/1/temp", Payload: payload, QoS: 1}}
				if err := s.PutInFlight(f); err != nil {
					b.Fatal(err)
				}
				if err := s.DeleteInFlight("bench", store.Outbound, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSaveSession measures saving a session with two subscriptions.
func BenchmarkSaveSession(b *testing.B) {
	s, err := store.Open(filepath.Join(b.TempDir(), "b.db"), store.Options{})
	require.NoError(b, err)
	defer s.Close()
	sess := sampleSession("bench")
	for b.Loop() {
		if err := s.SaveSession(sess); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteParallel is BenchmarkWrite from 64 goroutines at once, as
// many connections acknowledging QoS 1 messages do: with GroupCommit,
// their commits share fsyncs.
func BenchmarkWriteParallel(b *testing.B) {
	payload := make([]byte, 256)
	for _, c := range []struct {
		name string
		opts store.Options
	}{
		{"bolt-fsync", store.Options{}},
		{"bolt-fsync-group", store.Options{GroupCommit: true}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, err := store.Open(filepath.Join(b.TempDir(), "b.db"), c.opts)
			require.NoError(b, err)
			defer s.Close()
			var next atomic.Uint32
			b.SetParallelism(32) // x GOMAXPROCS goroutines
			b.RunParallel(func(pb *testing.PB) {
				client := fmt.Sprintf("c%d", next.Add(1))
				var id uint16
				for pb.Next() {
					id = id%65535 + 1
					f := store.InFlight{ClientID: client, Direction: store.Outbound, PacketID: id, State: store.AwaitingAck,
						Message: store.Message{Topic: "sensors/1/temp", Payload: payload, QoS: 1}}
					if err := s.PutInFlight(f); err != nil {
						b.Error(err)
						return
					}
					if err := s.DeleteInFlight(client, store.Outbound, id); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkWriterParallel is BenchmarkWriteParallel's QoS 1 cycle through a
// Writer, as the broker does it: each of 64 goroutines submits the put and
// waits for its commit (the publisher's PUBACK waits so), then submits the
// delete without waiting (a subscriber's PUBACK needs no answer). The
// writer commits whatever has queued up in one transaction. bolt-nosync
// shows what is left without the fsync (NoSync stays off by default).
func BenchmarkWriterParallel(b *testing.B) {
	payload := make([]byte, 256)
	for _, c := range []struct {
		name string
		opts store.Options
	}{
		{"bolt-fsync", store.Options{}},
		{"bolt-nosync", store.Options{NoSync: true}},
	} {
		b.Run(c.name, func(b *testing.B) {
			st, err := store.Open(filepath.Join(b.TempDir(), "b.db"), c.opts)
			require.NoError(b, err)
			defer st.Close()
			w := store.NewWriter(st, store.WriterConfig{})
			defer w.Close()
			var next atomic.Uint32
			b.SetParallelism(32) // x GOMAXPROCS goroutines
			b.RunParallel(func(pb *testing.PB) {
				client := fmt.Sprintf("c%d", next.Add(1))
				done := make(chan bool, 1)
				var id uint16
				for pb.Next() {
					id = id%65535 + 1
					from := w.Last()
					to, err := w.Submit(store.Change{Op: store.OpPutInFlight, InFlight: store.InFlight{ClientID: client,
						Direction: store.Outbound, PacketID: id, State: store.AwaitingAck,
						Message: store.Message{Topic: "sensors/1/temp", Payload: payload, QoS: 1}}})
					if err != nil {
						b.Error(err)
						return
					}
					ok, decided := w.Wait(from, to, func(ok bool) { done <- ok })
					if !decided {
						ok = <-done
					}
					if !ok {
						b.Error("commit failed")
						return
					}
					if _, err := w.Submit(store.Change{Op: store.OpDeleteInFlight,
						InFlight: store.InFlight{ClientID: client, Direction: store.Outbound, PacketID: id}}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
