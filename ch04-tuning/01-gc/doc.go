// Package gc is an allocation-heavy ingestion pipeline, used to see what
// Go's garbage collector costs and how to cut that cost.
//
// Go's collector is concurrent and non-generational: there are no young and
// old generations to size. It has two knobs. GOGC (default 100) lets the heap
// grow by that percentage over the live heap before the next cycle, trading
// memory for fewer cycles; GOMEMLIMIT is a soft cap on the whole runtime's
// memory, which makes the collector run more often as the cap nears. The
// cheaper lever is to allocate less: escape analysis (go build
// -gcflags=-m) says which values go to the heap, and testing.AllocsPerRun
// turns "allocates nothing per record" into a test.
//
// The pipeline reads lines "device,metric,value,unix-ms", parses each into
// a Reading and folds it into per-device Stats. ParseNaive and
// NaiveAggregator are the first version anyone writes; Parse and Aggregator
// are the same work without an allocation per record.
package gc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
)

// Metric is what a reading measures.
type Metric uint8

// The metrics a line may carry.
const (
	Temp Metric = iota
	Humidity
	CO2
	Battery
	numMetrics
)

var metricNames = [numMetrics]string{"temp", "hum", "co2", "bat"}

func (m Metric) String() string {
	if m < numMetrics {
		return metricNames[m]
	}
	return fmt.Sprintf("Metric(%d)", uint8(m))
}

// ErrSyntax is returned, wrapped with the line, for a line that is not
// "device,metric,value,unix-ms".
var ErrSyntax = errors.New("malformed reading")

// Reading is one parsed line.
type Reading struct {
	// Device is the device's name. Parse makes it share memory with the
	// line it was parsed from: it is valid only as long as that line is.
	Device []byte
	Metric Metric
	Value  float64
	At     int64 // Unix milliseconds
}

// Stats are one device's readings folded together, per metric.
type Stats struct {
	Count [numMetrics]uint64
	Sum   [numMetrics]float64
	Min   [numMetrics]float64
	Max   [numMetrics]float64
	Last  int64 // latest At seen
}

// add folds one value in.
func (s *Stats) add(m Metric, v float64, at int64) {
	if s.Count[m] == 0 {
		s.Min[m], s.Max[m] = math.Inf(1), math.Inf(-1)
	}
	s.Count[m]++
	s.Sum[m] += v
	s.Min[m] = min(s.Min[m], v)
	s.Max[m] = max(s.Max[m], v)
	s.Last = max(s.Last, at)
}

// Aggregator folds readings into Stats per device. The zero value is ready
// to use. It is not safe for concurrent use.
type Aggregator struct {
	devices map[string]*Stats // device name -> its stats
}

// Stats returns a copy of device's stats and whether it has any.
func (a *Aggregator) Stats(device string) (Stats, bool) {
	s, ok := a.devices[device]
	if !ok {
		return Stats{}, false
	}
	return *s, true
}

// Len returns the number of devices seen.
func (a *Aggregator) Len() int { return len(a.devices) }

// Ingest reads lines from r, parses each with parse and hands it to add.
// It stops at the first error, which it returns wrapped with the line
// number, and returns the number of readings added.
func Ingest(r io.Reader, parse func([]byte) (Reading, error), add func(Reading)) (int, error) {
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		rd, err := parse(sc.Bytes())
		if err != nil {
			return n, fmt.Errorf("ingest line %d: %w", n+1, err)
		}
		add(rd)
		n++
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("ingest: %w", err)
	}
	return n, nil
}
