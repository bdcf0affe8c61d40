//go:build floodgate.solution

package gc

import (
	"bytes"
	"fmt"
	"strconv"
)

// Parse parses "device,metric,value,unix-ms" (a trailing "\r" or spaces
// are allowed) without allocating: r.Device shares line's memory. It
// returns an error wrapping ErrSyntax for anything else.
func Parse(line []byte) (Reading, error) {
	line = bytes.TrimSpace(line)
	dev, rest, ok1 := bytes.Cut(line, []byte{','})
	name, rest, ok2 := bytes.Cut(rest, []byte{','})
	val, at, ok3 := bytes.Cut(rest, []byte{','})
	if !ok1 || !ok2 || !ok3 || len(dev) == 0 || bytes.IndexByte(at, ',') >= 0 {
		return Reading{}, fmt.Errorf("parse %q: %w", line, ErrSyntax)
	}
	var m Metric
	// string(b) in a comparison, a switch or a map index does not
	// allocate: the compiler knows the string does not outlive the
	// expression.
	switch string(name) {
	case "temp":
		m = Temp
	case "hum":
		m = Humidity
	case "co2":
		m = CO2
	case "bat":
		m = Battery
	default:
		return Reading{}, fmt.Errorf("parse %q: unknown metric: %w", line, ErrSyntax)
	}
	// strconv copies its input into any error it returns, so the string
	// does not escape, and a short one lives on the stack.
	v, err := strconv.ParseFloat(string(val), 64)
	if err != nil {
		return Reading{}, fmt.Errorf("parse %q: value: %w", line, ErrSyntax)
	}
	t, err := strconv.ParseInt(string(at), 10, 64)
	if err != nil {
		return Reading{}, fmt.Errorf("parse %q: time: %w", line, ErrSyntax)
	}
	return Reading{Device: dev, Metric: m, Value: v, At: t}, nil
}

// Add folds r into its device's stats. For a device it has seen before it
// allocates nothing; for a new one it copies the name once.
func (a *Aggregator) Add(r Reading) {
	s := a.devices[string(r.Device)] // no allocation: the key is only read
	if s == nil {
		if a.devices == nil {
			a.devices = make(map[string]*Stats)
		}
		s = new(Stats)
		a.devices[string(r.Device)] = s // one copy of the name, once per device
	}
	s.add(r.Metric, r.Value, r.At)
}
