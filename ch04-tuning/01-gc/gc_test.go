package gc

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var good = []string{
	"sensor-000042,temp,21.53,1764000000000",
	"a,hum,-0.5,0",
	"gw/7,co2,415,1764000000123\r",
	"  x,bat,3.71e0,-1  ",
}

var bad = []string{
	"", ",temp,1,2", "a,temp,1", "a,temp,1,2,3", "a,volts,1,2",
	"a,temp,warm,2", "a,temp,1,yesterday", "a;temp;1;2", "a,temp,,2",
}

func TestTask1_ParseAllocatesNothing(t *testing.T) {
	for _, line := range good {
		want, err := ParseNaive([]byte(line))
		require.NoError(t, err, line)
		got, err := Parse([]byte(line))
		require.NoError(t, err, line)
		assert.Equal(t, want, got, line)
	}
	for _, line := range bad {
		_, err := Parse([]byte(line))
		require.ErrorIs(t, err, ErrSyntax, "%q", line)
	}
	t.Run("the device shares the line's memory", func(t *testing.T) {
		line := []byte("dev-1,temp,1,2")
		r, err := Parse(line)
		require.NoError(t, err)
		line[0] = 'D'
		require.Equal(t, "Dev-1", string(r.Device))
	})
	t.Run("matches ParseNaive on generated input", func(t *testing.T) {
		l := &Lines{N: 5000, Devices: 100}
		n := 0
		_, err := Ingest(l, func(b []byte) (Reading, error) {
			want, err := ParseNaive(b)
			require.NoError(t, err)
			got, err := Parse(b)
			require.NoError(t, err)
			require.Equal(t, want, got)
			n++
			return got, nil
		}, func(Reading) {})
		require.NoError(t, err)
		require.Equal(t, 5000, n)
	})
	t.Run("zero allocations per line", func(t *testing.T) {
		line := []byte("sensor-000042,temp,21.53,1764000000000")
		var r Reading
		allocs := testing.AllocsPerRun(1000, func() { r, _ = Parse(line) })
		require.Equal(t, Temp, r.Metric, "Parse must parse, not just return")
		require.Zero(t, allocs)
		naive := testing.AllocsPerRun(1000, func() { r, _ = ParseNaive(line) })
		t.Logf("allocations per line: Parse %v, ParseNaive %v", allocs, naive)
	})
}

func TestTask2_AggregateAllocatesNothing(t *testing.T) {
	t.Run("same stats as NaiveAggregator", func(t *testing.T) {
		var want NaiveAggregator
		var got Aggregator
		_, err := Ingest(&Lines{N: 20_000, Devices: 300}, ParseNaive, func(r Reading) {
			want.Add(r)
			got.Add(r)
		})
		require.NoError(t, err)
		require.Equal(t, 300, want.Len())
		require.Equal(t, want.Len(), got.Len())
		for i := range 300 {
			dev := fmt.Sprintf("sensor-%06d", i)
			w, ok := want.Stats(dev)
			require.True(t, ok, dev)
			g, ok := got.Stats(dev)
			require.True(t, ok, dev)
			require.Equal(t, w, g, dev)
		}
	})
	t.Run("the device name is copied, not kept", func(t *testing.T) {
		var a Aggregator
		line := []byte("dev-1,temp,1,2")
		r, err := ParseNaive(line)
		require.NoError(t, err)
		a.Add(r)
		r.Device[0] = 'X'
		_, ok := a.Stats("dev-1")
		require.True(t, ok, "the key must not share memory with the reading")
	})
	t.Run("zero allocations for a known device", func(t *testing.T) {
		var a Aggregator
		r := Reading{Device: []byte("sensor-000001"), Metric: CO2, Value: 400, At: 1}
		a.Add(r)
		allocs := testing.AllocsPerRun(1000, func() { a.Add(r) })
		s, ok := a.Stats("sensor-000001")
		require.True(t, ok)
		require.EqualValues(t, 1002, s.Count[CO2])
		require.Zero(t, allocs)
	})
	t.Run("the whole pipeline allocates per device, not per line", func(t *testing.T) {
		const lines, devices = 20_000, 300
		var a Aggregator
		var n int
		allocs := testing.AllocsPerRun(1, func() {
			a = Aggregator{}
			n, _ = Ingest(&Lines{N: lines, Devices: devices}, Parse, a.Add)
		})
		require.Equal(t, lines, n)
		require.Equal(t, devices, a.Len())
		t.Logf("%d lines, %d devices: %v allocations", lines, devices, allocs)
		require.LessOrEqual(t, allocs, float64(3*devices+100))
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range append(good, bad...) {
		f.Add([]byte(s))
	}
	f.Add([]byte("nan-sensor,temp,NaN,1"))
	f.Fuzz(func(t *testing.T, line []byte) {
		got, err := Parse(line)
		if err != nil {
			require.ErrorIs(t, err, ErrSyntax)
			return
		}
		want, err := ParseNaive(line)
		require.NoError(t, err, "Parse accepted %q, ParseNaive did not", line)
		if math.IsNaN(want.Value) && math.IsNaN(got.Value) {
			want.Value, got.Value = 0, 0 // NaN != NaN, but both parsed "NaN"
		}
		require.Equal(t, want, got)
		require.False(t, strings.ContainsRune(string(got.Device), ','))
	})
}
