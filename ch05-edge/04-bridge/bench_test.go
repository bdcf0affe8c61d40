package bridge

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkAppend measures Spool.Append: one record written and fsynced,
// the price of "accepted" for each message. Its figure depends on the disk
// far more than on the code.
func BenchmarkAppend(b *testing.B) {
	sp, err := OpenSpool(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sp.Close() }()
	payload := bytes.Repeat([]byte("x"), 128)
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if err := sp.Append(payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendNoSync is the same write without the fsync: the baseline
// that shows what durability costs. The spool never does this.
func BenchmarkAppendNoSync(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	payload := bytes.Repeat([]byte("x"), 128)
	b.SetBytes(int64(len(payload)))
	var rec []byte
	for b.Loop() {
		rec = appendRecord(rec[:0], payload)
		if _, err := f.Write(rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeRecord measures the decoder on a 128-byte payload.
func BenchmarkDecodeRecord(b *testing.B) {
	rec := appendRecord(nil, bytes.Repeat([]byte("x"), 128))
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := decodeRecord(rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBridge measures the whole path: b.N messages published to the
// local broker, spooled (one fsync each), forwarded and acknowledged by the
// upstream broker, both brokers in-process on loopback. Run it with a fixed
// count, e.g. -benchtime=2000x.
func BenchmarkBridge(b *testing.B) {
	local := startBroker(b, "127.0.0.1:0", newWatch())
	upWatch := newWatch()
	up := startBroker(b, "127.0.0.1:0", upWatch)
	br := runBridge(b, bridgeConfig(local.addr, up.addr, b.TempDir()))
	local.watch.until(b, "the bridge to subscribe", br.exited, func(_, _ []string, s int) bool { return s > 0 })
	pub := publisher(b, local.addr)
	payload := bytes.Repeat([]byte("x"), 128)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pub.Publish("sensors/t1", 1, false, payload) // the wait is for the upstream below
	}
	upWatch.until(b, "every message upstream", br.exited, func(_, p []string, _ int) bool { return len(p) >= b.N })
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
