package gc

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseNaive parses "device,metric,value,unix-ms" the way a first draft
// does: it converts the line to a string, splits it into a new slice of
// strings, and copies the device name out. Every line costs several heap
// allocations; see the lesson's -gcflags=-m output.
func ParseNaive(line []byte) (Reading, error) {
	parts := strings.Split(strings.TrimSpace(string(line)), ",")
	if len(parts) != 4 || parts[0] == "" {
		return Reading{}, fmt.Errorf("parse %q: %w", line, ErrSyntax)
	}
	m := Metric(255)
	for i, name := range metricNames {
		if parts[1] == name {
			m = Metric(i)
		}
	}
	if m == 255 {
		return Reading{}, fmt.Errorf("parse %q: unknown metric: %w", line, ErrSyntax)
	}
	v, err := strconv.ParseFloat(parts[2], 64)
	if err != nil {
		return Reading{}, fmt.Errorf("parse %q: value: %w", line, ErrSyntax)
	}
	at, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return Reading{}, fmt.Errorf("parse %q: time: %w", line, ErrSyntax)
	}
	return Reading{Device: []byte(parts[0]), Metric: m, Value: v, At: at}, nil
}

// NaiveAggregator keeps Stats by value in a map keyed by a string built
// for every reading. The zero value is ready to use.
type NaiveAggregator struct {
	devices map[string]Stats
}

// Add folds r into its device's stats.
func (a *NaiveAggregator) Add(r Reading) {
	if a.devices == nil {
		a.devices = map[string]Stats{}
	}
	key := string(r.Device)
	s := a.devices[key]
	s.add(r.Metric, r.Value, r.At)
	a.devices[key] = s
}

// Stats returns device's stats and whether it has any.
func (a *NaiveAggregator) Stats(device string) (Stats, bool) {
	s, ok := a.devices[device]
	return s, ok
}

// Len returns the number of devices seen.
func (a *NaiveAggregator) Len() int { return len(a.devices) }
