package mqtt

import (
	"bytes"
	"testing"
)

// Benchmarks report; they never pass or fail on time.

func BenchmarkDecodePublishReused(b *testing.B) {
	body := publishV5[2:]
	h := FixedHeader{PUBLISH, 0x2, uint32(len(body))}
	var p Publish
	b.ReportAllocs()
	b.SetBytes(int64(len(publishV5)))
	for b.Loop() {
		if err := p.Decode(h, body, V5); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePublishNew(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(publishV5)))
	for b.Loop() {
		if _, _, err := Decode(publishV5, V5, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodePublish(b *testing.B) {
	p := &Publish{QoS: 1, PacketID: 7, Topic: []byte("sensors/42/temp"),
		Properties: Properties{MessageExpiry: 60, TopicAlias: 5}, Payload: bytes.Repeat([]byte{'x'}, 64)}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = p.AppendTo(buf[:0], V5); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkReaderPublish(b *testing.B) {
	r := NewReader(&loopReader{b: publishV5}, Config{Version: V5})
	var p Publish
	b.ReportAllocs()
	b.SetBytes(int64(len(publishV5)))
	for b.Loop() {
		h, body, err := r.Next()
		if err == nil {
			err = p.Decode(h, body, V5)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeConnect(b *testing.B) {
	wire := fixtures[1].wire
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Decode(wire, V5, 0); err != nil {
			b.Fatal(err)
		}
	}
}
