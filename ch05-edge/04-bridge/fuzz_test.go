package bridge

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeRecord feeds the decoder arbitrary bytes: it must never panic,
// every error must be ErrShortRecord or ErrCorrupt, and what it accepts must
// be exactly a record appendRecord would write.
//
//	go test -tags floodgate.solution -fuzz FuzzDecodeRecord -fuzztime 30s ./ch05-edge/04-bridge/
func FuzzDecodeRecord(f *testing.F) {
	rec := appendRecord(nil, []byte("sensors/t1 21.5"))
	f.Add(rec)
	f.Add(rec[:5])
	f.Add(append(bytes.Clone(rec), rec[:3]...))
	f.Add(make([]byte, 16))
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		payload, n, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrShortRecord) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if n < HeaderSize || n > len(b) || len(payload) != n-HeaderSize {
			t.Fatalf("n = %d, payload %d bytes, input %d bytes", n, len(payload), len(b))
		}
		if again := appendRecord(nil, payload); !bytes.Equal(again, b[:n]) {
			t.Fatalf("decoded %x, which encodes as %x", b[:n], again)
		}
	})
}

// FuzzOpenSpool writes three good records followed by arbitrary bytes (a
// torn or garbage tail) and reopens the spool: it must open, keep the three
// records first, and leave the log holding only intact records.
func FuzzOpenSpool(f *testing.F) {
	whole := appendRecord(nil, []byte("torn"))
	f.Add(whole[:len(whole)-1])
	f.Add(make([]byte, 512))
	f.Add([]byte{0, 0, 0, 1})
	f.Add(whole)
	f.Fuzz(func(t *testing.T, tail []byte) {
		dir := t.TempDir()
		var log []byte
		for _, p := range []string{"a", "bb", "ccc"} {
			log = appendRecord(log, []byte(p))
		}
		if err := os.WriteFile(filepath.Join(dir, logName), append(bytes.Clone(log), tail...), 0o600); err != nil {
			t.Fatal(err)
		}
		sp, err := OpenSpool(dir)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer func() { _ = sp.Close() }()
		got, _ := drain(t, sp)
		if len(got) < 3 || got[0] != "a" || got[1] != "bb" || got[2] != "ccc" {
			t.Fatalf("records after reopen: %q", got)
		}
		data, err := os.ReadFile(filepath.Join(dir, logName))
		if err != nil {
			t.Fatal(err)
		}
		for len(data) > 0 { // what is left must decode completely
			_, n, err := decodeRecord(data)
			if err != nil {
				t.Fatalf("log still holds a bad record after open: %v", err)
			}
			data = data[n:]
		}
		if sp.Truncated() < 0 || sp.Truncated() > int64(len(tail)) {
			t.Fatalf("Truncated() = %d for a tail of %d bytes", sp.Truncated(), len(tail))
		}
	})
}
