package reload

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkReloadEtcd measures one hot reload end to end: a Put of a new
// version to a local single-node etcd, its watch event, Apply, and the
// Event reporting the swap.
//
//	go test -tags floodgate.solution -run '^$' -bench ReloadEtcd -benchtime 200x ./02-reload/
func BenchmarkReloadEtcd(b *testing.B) {
	cli := startEtcd(b)
	const key = "/floodgate/bench/config"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newHolder(b, 1)
	events := make(chan Event)
	done := make(chan error, 1)
	go func() { done <- WatchEtcd(ctx, cli, key, h, events) }()
	v := 1
	b.ResetTimer()
	for range b.N {
		v++
		if _, err := cli.Put(ctx, key, string(cfgJSON(v))); err != nil {
			b.Fatal(err)
		}
		select {
		case ev := <-events:
			if ev.Err != nil || ev.Version != v {
				b.Fatalf("event %+v, want version %d", ev, v)
			}
		case err := <-done:
			b.Fatalf("watch ended: %v", err)
		}
	}
	b.StopTimer()
	cancel()
	<-done
}

// BenchmarkReloadFile measures one hot reload from a file: an atomic
// replace (write + rename), the fsnotify event, the read, Apply, and the
// Event reporting the swap.
//
//	go test -tags floodgate.solution -run '^$' -bench ReloadFile -benchtime 200x ./02-reload/
func BenchmarkReloadFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "edge.json")
	writeAtomic(b, path, cfgJSON(1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newHolder(b, 1)
	events := make(chan Event, 1)
	done := make(chan error, 1)
	go func() { done <- WatchFile(ctx, FileWatch{Path: path}, h, events) }()
	<-events // the initial read: version 1 is stale, reported with ErrStale
	v := 1
	b.ResetTimer()
	for range b.N {
		v++
		writeAtomic(b, path, cfgJSON(v))
		for { // a rename may be reported more than once; wait for our version
			select {
			case ev := <-events:
				if ev.Err != nil {
					b.Fatalf("event %+v", ev)
				}
			case err := <-done:
				b.Fatalf("watch ended: %v", err)
			case <-time.After(10 * time.Second):
				b.Fatal("no event")
			}
			if h.Load().Version == v {
				break
			}
		}
	}
	b.StopTimer()
	cancel()
	<-done
}

// BenchmarkLoad is what the hot path pays per message for reloadability:
// one atomic pointer load, from all Ps at once.
func BenchmarkLoad(b *testing.B) {
	h := newHolder(b, 1)
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		for pb.Next() {
			n += h.Load().MaxBatch
		}
		_ = n
	})
}
