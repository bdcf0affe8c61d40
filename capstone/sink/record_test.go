package sink

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleRecords(n int) []Record {
	out := make([]Record, n)
	for i := range out {
		out[i] = Record{
			Time:     time.Date(2026, 11, 25, 10, 0, i, 0, time.UTC),
			ClientID: "c",
			Topic:    "sensors/1/temp",
			QoS:      byte(i % 3),
			Retain:   i%2 == 0,
			Payload:  []byte{byte(i), 'x'},
		}
	}
	return out
}

func encodeAll(t testing.TB, recs []Record) []byte {
	var b []byte
	for _, r := range recs {
		var err error
		b, err = AppendFrame(b, r)
		require.NoError(t, err)
	}
	return b
}

func TestFrameRoundTripAndTornTail(t *testing.T) {
	recs := sampleRecords(5)
	b := encodeAll(t, recs)
	got, n, err := DecodeFrames(b, 0)
	require.NoError(t, err)
	assert.Equal(t, len(b), n)
	assert.Equal(t, recs, got)

	// Every cut inside the last frame loses exactly that frame.
	last := len(encodeAll(t, recs[:4]))
	for cut := last + 1; cut < len(b); cut++ {
		got, n, err := DecodeFrames(b[:cut], 0)
		require.ErrorIs(t, err, ErrTorn, "cut at %d", cut)
		assert.Equal(t, last, n)
		assert.Equal(t, recs[:4], got)
	}
	// A flipped bit in a body fails the CRC.
	bad := bytes.Clone(b)
	bad[last+frameHeader+3] ^= 1
	got, n, err = DecodeFrames(bad, 0)
	require.ErrorIs(t, err, ErrTorn)
	assert.Equal(t, last, n)
	assert.Len(t, got, 4)

	// max stops early without an error.
	got, n, err = DecodeFrames(b, 2)
	require.NoError(t, err)
	assert.Len(t, got, 2)
	assert.Equal(t, len(encodeAll(t, recs[:2])), n)

	_, err = AppendFrame(nil, Record{Topic: string(make([]byte, 70000))})
	require.ErrorIs(t, err, ErrTooLarge)
}

// FuzzDecodeFrames feeds arbitrary bytes (seeded with valid logs, torn
// ones and corrupt ones) to the spool's decoder: it never panics, never
// claims more bytes than it was given, what it decodes re-encodes to
// exactly the bytes it consumed, and the streaming scanner agrees with it.
func FuzzDecodeFrames(f *testing.F) {
	valid := encodeAll(f, sampleRecords(3))
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add(valid[:5])
	f.Add(append(bytes.Clone(valid), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0))
	f.Add([]byte{0, 0, 0, 15, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, n, err := DecodeFrames(b, 0)
		if n < 0 || n > len(b) {
			t.Fatalf("n = %d of %d bytes", n, len(b))
		}
		if err == nil && n != len(b) {
			t.Fatalf("no error but %d of %d bytes decoded", n, len(b))
		}
		if err != nil && !errors.Is(err, ErrTorn) {
			t.Fatalf("unexpected error %v", err)
		}
		if re := encodeAll(t, recs); !bytes.Equal(re, b[:n]) {
			t.Fatalf("re-encoding differs: %x vs %x", re, b[:n])
		}
		cnt, end, serr := scanFrames(bytes.NewReader(b))
		if cnt != len(recs) || end != int64(n) || (serr == nil) != (err == nil) {
			t.Fatalf("scanFrames = %d, %d, %v; DecodeFrames = %d, %d, %v", cnt, end, serr, len(recs), n, err)
		}
	})
}

func TestSpoolReopenResumesAndCutsTornTail(t *testing.T) {
	dir := t.TempDir()
	recs := sampleRecords(10)
	s, err := openSpool(dir, 1<<20, 200) // small segments: several files
	require.NoError(t, err)
	for _, r := range recs {
		require.NoError(t, s.append([]Record{r}))
	}
	require.Greater(t, len(s.segs), 1)
	got, nb, err := s.peek(3)
	require.NoError(t, err)
	require.Equal(t, recs[:3], got)
	require.NoError(t, s.ack(3, nb))
	require.NoError(t, s.close())

	// A crash mid-append leaves half a frame in the newest segment.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	tail := segs[len(segs)-1]
	fh, err := os.OpenFile(tail, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	half := encodeAll(t, sampleRecords(1))
	_, err = fh.Write(half[:len(half)/2])
	require.NoError(t, err)
	require.NoError(t, fh.Close())

	s, err = openSpool(dir, 1<<20, 200)
	require.NoError(t, err)
	defer s.close()
	assert.Equal(t, 7, s.records)
	var all []Record
	for s.records > 0 {
		got, nb, err := s.peek(4)
		require.NoError(t, err)
		require.NotEmpty(t, got)
		all = append(all, got...)
		require.NoError(t, s.ack(len(got), nb))
	}
	assert.Equal(t, recs[3:], all)
	left, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	assert.Empty(t, left, "delivered segments are removed")
}

func TestSpoolPrependAndBound(t *testing.T) {
	s, err := openSpool(t.TempDir(), 300, 1<<20)
	require.NoError(t, err)
	defer s.close()
	recs := sampleRecords(4)
	require.NoError(t, s.append(recs[2:3]))
	require.NoError(t, s.prepend(recs[:2]))
	got, _, err := s.peek(10)
	require.NoError(t, err)
	assert.Equal(t, recs[:2], got, "prepended records come first, from their own segment")
	big := Record{Topic: "t", Payload: make([]byte, 300)}
	require.ErrorIs(t, s.append([]Record{big}), ErrSpoolFull)
	assert.Equal(t, 3, s.records, "a refused append changes nothing")
}

func TestMatchFilter(t *testing.T) {
	for _, c := range []struct {
		f, t string
		ok   bool
	}{
		{"#", "a/b", true}, {"a/#", "a", true}, {"a/+/c", "a/b/c", true}, {"a/+", "a/b/c", false},
		{"a/b", "a/b", true}, {"a/b", "a/c", false}, {"#", "$SYS/x", false}, {"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
	} {
		assert.Equal(t, c.ok, matchFilter(c.f, c.t), "%s vs %s", c.f, c.t)
	}
	for _, f := range []string{"", "a/#/b", "a+", "a/b#"} {
		assert.False(t, validFilter(f), f)
	}
}
