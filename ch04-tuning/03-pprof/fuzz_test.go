package pprof

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseLine feeds ParseLine arbitrary lines, as an HTTP client may send
// them. It must never panic, must fail only with ErrSyntax, and may accept
// only what a plain split says is "device,metric,value" with a number
// strconv reads, giving back that key and value.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"sensor-1,temp,21.5", "a,b,-3e2\r", "", "a,b", "a,b,c,1", ",b,1", "a,,1", "a,b,x", "a,b,", "a,b,NaN", "a,b,0x1p-2"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		in := bytes.Clone(line)
		key, v, err := ParseLine(line)
		if !bytes.Equal(in, line) {
			t.Fatalf("ParseLine(%q) changed its input to %q", in, line)
		}
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("ParseLine(%q): error %v does not wrap ErrSyntax", line, err)
			}
			return
		}
		fields := strings.Split(strings.TrimSuffix(string(line), "\r"), ",")
		if len(fields) != 3 || fields[0] == "" || fields[1] == "" {
			t.Fatalf("ParseLine accepted %q, which is not device,metric,value", line)
		}
		want, werr := strconv.ParseFloat(fields[2], 64)
		if werr != nil {
			t.Fatalf("ParseLine accepted %q, whose value strconv refuses: %v", line, werr)
		}
		if string(key) != fields[0]+","+fields[1] {
			t.Fatalf("ParseLine(%q): key %q", line, key)
		}
		if v != want && !(math.IsNaN(v) && math.IsNaN(want)) {
			t.Fatalf("ParseLine(%q): value %v, want %v", line, v, want)
		}
	})
}
