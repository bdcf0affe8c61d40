package mqtt

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

var writeCorpus = flag.Bool("mqtt.write-corpus", false, "rewrite testdata/fuzz/FuzzDecode from the fixtures")

// FuzzDecode feeds arbitrary bytes to the decoder under both versions. It
// checks that decoding never panics, that every failure carries a reason
// code (or says the input ended early), and that whatever decodes also
// re-encodes, decodes again to the same packet, and encodes to the same
// bytes. The seed corpus is in testdata/fuzz/FuzzDecode: the fixtures of
// codec_test.go and the regressions the fuzzer found.
func FuzzDecode(f *testing.F) {
	for _, fx := range fixtures {
		f.Add(fx.wire)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		needTasks(t)
		for _, v := range []Version{V311, V5} {
			checkRoundTrip(t, data, v)
		}
		// The stream reader must stop on bad input too, and not loop.
		r := NewReader(bytes.NewReader(data), Config{MaxPacketSize: 4096, Version: V5})
		for i := 0; i <= len(data); i++ {
			if _, err := r.ReadPacket(); err != nil {
				break
			}
		}
	})
}

func checkRoundTrip(t *testing.T, data []byte, v Version) {
	p, n, err := Decode(data, v, 1<<16)
	if err != nil {
		if !errors.Is(err, io.ErrUnexpectedEOF) && CodeOf(err) == UnspecifiedError {
			t.Fatalf("%v: error without a reason code: %v", v, err)
		}
		return
	}
	require.LessOrEqual(t, n, len(data))
	b1, err := p.AppendTo(nil, v)
	require.NoError(t, err, "%v: a decoded %s must encode again", v, p.Type())
	p2, n2, err := Decode(b1, v, 0)
	require.NoError(t, err, "%v: re-encoded %s must decode: % x", v, p.Type(), b1)
	require.Equal(t, len(b1), n2)
	require.Equal(t, p, p2, "%v: decode(encode(p)) != p", v)
	b2, err := p2.AppendTo(nil, v)
	require.NoError(t, err)
	require.Equal(t, b1, b2, "%v: encoding is not stable", v)
}

// TestWriteSeedCorpus rewrites the checked-in seed corpus from the fixtures
// when run with -args -mqtt.write-corpus; otherwise it checks that the
// corpus directory holds at least the fixtures.
func TestWriteSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if !*writeCorpus {
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(entries), len(fixtures))
		return
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for i, fx := range fixtures {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", fx.wire)
		name := filepath.Join(dir, fmt.Sprintf("fixture-%02d", i))
		require.NoError(t, os.WriteFile(name, []byte(body), 0o644))
	}
}
