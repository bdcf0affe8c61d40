package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"floodgate/tools/internal/load"
)

// metric is one row of the table.
type metric struct {
	caseName string
	name     string
	lower    bool // lower is better
	unit     string
	value    func(*load.Result) (float64, bool)
}

func (m metric) format(v float64) string {
	switch m.unit {
	case "µs":
		if v >= 1000 {
			return fmt.Sprintf("%.2f ms", v/1000)
		}
		return fmt.Sprintf("%.0f µs", v)
	case "B":
		return fmt.Sprintf("%s B", group(v))
	case "%":
		return fmt.Sprintf("%.2f%%", v)
	}
	return fmt.Sprintf("%s/s", group(v))
}

// group writes v rounded, with thousands separators.
func group(v float64) string {
	s := fmt.Sprintf("%.0f", math.Abs(v))
	var b strings.Builder
	if v < 0 && s != "0" {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func lat(f func(*load.Percentiles) float64) func(*load.Result) (float64, bool) {
	return func(r *load.Result) (float64, bool) {
		if r.Latency == nil {
			return 0, false
		}
		return f(r.Latency), true
	}
}

func nonzero(f func(*load.Result) float64) func(*load.Result) (float64, bool) {
	return func(r *load.Result) (float64, bool) { v := f(r); return v, v != 0 }
}

// metrics are the table's rows, in order.
var metrics = []metric{
	{"idle", "RSS per idle subscribed connection", true, "B", func(r *load.Result) (float64, bool) {
		return r.BrokerRSSPerConn, r.BrokerRSSAfter != 0
	}},
	{"fanin/500", "QoS0 fan-in, 500 in flight, delivered", false, "msg", nonzero(func(r *load.Result) float64 { return r.Throughput })},
	{"fanin/500", "fan-in loss, 500 in flight", true, "%", func(r *load.Result) (float64, bool) { return 100 * r.Loss(), r.Expected > 0 }},
	{"fanin/4000", "QoS0 fan-in, 4,000 in flight, delivered", false, "msg", nonzero(func(r *load.Result) float64 { return r.Throughput })},
	{"fanin/4000", "fan-in loss, 4,000 in flight", true, "%", func(r *load.Result) (float64, bool) { return 100 * r.Loss(), r.Expected > 0 }},
	{"fanout", "QoS0 fan-out, delivered", false, "msg", nonzero(func(r *load.Result) float64 { return r.Throughput })},
	{"fanout", "fan-out p99 latency", true, "µs", lat(func(l *load.Percentiles) float64 { return l.P99US })},
	{"latency", "latency p50", true, "µs", lat(func(l *load.Percentiles) float64 { return l.P50US })},
	{"latency", "latency p99", true, "µs", lat(func(l *load.Percentiles) float64 { return l.P99US })},
	{"latency", "latency p99.9", true, "µs", lat(func(l *load.Percentiles) float64 { return l.P999US })},
	{"storm", "connect+subscribe rate", false, "conn", nonzero(func(r *load.Result) float64 { return r.ConnectRate })},
}

// cell is the median of one metric for one broker.
type cell struct {
	Median float64   `json:"median"`
	Values []float64 `json:"values"`
}

// row is one metric across brokers.
type row struct {
	Metric string           `json:"metric"`
	Lower  bool             `json:"lower_is_better"`
	Cells  map[string]*cell `json:"cells"`
	m      metric
}

type summary struct {
	Date    time.Time         `json:"date"`
	Seconds float64           `json:"seconds"`
	Runs    int               `json:"runs"`
	Quick   bool              `json:"quick"`
	Brokers []string          `json:"brokers"`
	Absent  map[string]string `json:"absent,omitempty"`
	Rows    []*row            `json:"rows"`
	Failed  []string          `json:"failed,omitempty"`
	Cases   []benchCase       `json:"cases"`
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func summarize(recs []record, brokers []string, cases []benchCase) *summary {
	sum := &summary{Brokers: brokers}
	for _, m := range metrics {
		if !slices.ContainsFunc(cases, func(c benchCase) bool { return c.Name == m.caseName }) {
			continue
		}
		rw := &row{Metric: m.name, Lower: m.lower, Cells: map[string]*cell{}, m: m}
		for _, rec := range recs {
			if rec.Case != m.caseName || rec.Result == nil || rec.Error != "" {
				continue
			}
			if v, ok := m.value(rec.Result); ok {
				c := rw.Cells[rec.Broker]
				if c == nil {
					c = &cell{}
					rw.Cells[rec.Broker] = c
				}
				c.Values = append(c.Values, v)
			}
		}
		for _, c := range rw.Cells {
			c.Median = median(c.Values)
		}
		sum.Rows = append(sum.Rows, rw)
	}
	for _, rec := range recs {
		if rec.Error != "" {
			sum.Failed = append(sum.Failed, fmt.Sprintf("%s %s run %d: %s", rec.Broker, rec.Case, rec.Run, rec.Error))
		} else if r := rec.Result; r != nil && r.Failed+r.Lost > 0 {
			sum.Failed = append(sum.Failed, fmt.Sprintf("%s %s run %d: %d connections failed, %d lost (counted in the medians)", rec.Broker, rec.Case, rec.Run, r.Failed, r.Lost))
		}
	}
	return sum
}

// markdown is the side-by-side table: medians, then each broker's ratio to
// each peer listed before it.
func (s *summary) markdown() string {
	var b strings.Builder
	type pair struct{ a, b string }
	var pairs []pair
	for i, a := range s.Brokers {
		for _, p := range s.Brokers[:i] {
			pairs = append(pairs, pair{a, p})
		}
	}
	b.WriteString("| metric |")
	for _, br := range s.Brokers {
		fmt.Fprintf(&b, " %s |", br)
	}
	for _, p := range pairs {
		fmt.Fprintf(&b, " %s / %s |", p.a, p.b)
	}
	b.WriteString("\n|---|")
	b.WriteString(strings.Repeat("---:|", len(s.Brokers)+len(pairs)))
	b.WriteString("\n")
	for _, r := range s.Rows {
		dir := "higher is better"
		if r.Lower {
			dir = "lower is better"
		}
		fmt.Fprintf(&b, "| %s (%s) |", r.Metric, dir)
		for _, br := range s.Brokers {
			if c := r.Cells[br]; c != nil {
				fmt.Fprintf(&b, " %s |", r.m.format(c.Median))
			} else {
				b.WriteString(" n/a |")
			}
		}
		for _, p := range pairs {
			ca, cb := r.Cells[p.a], r.Cells[p.b]
			if ca == nil || cb == nil || cb.Median == 0 || r.m.unit == "%" {
				b.WriteString(" |")
				continue
			}
			fmt.Fprintf(&b, " %.2f× |", ca.Median/cb.Median)
		}
		b.WriteString("\n")
	}
	mode := fmt.Sprintf("medians of %d runs", s.Runs)
	if s.Quick {
		mode = "QUICK: 1 short run each, smoke test only"
	}
	fmt.Fprintf(&b, "\n%s, %s UTC, %.0f s in all; a fresh broker process per run.\n", mode, s.Date.Format("2006-01-02 15:04"), s.Seconds)
	for _, br := range sortedKeys(s.Absent) {
		fmt.Fprintf(&b, "\n- %s: absent: %s", br, s.Absent[br])
	}
	for _, f := range s.Failed {
		fmt.Fprintf(&b, "\n- failed: %s", f)
	}
	if len(s.Absent)+len(s.Failed) > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for x := range m {
		k = append(k, x)
	}
	slices.Sort(k)
	return k
}

// chart draws each broker's medians relative to the first broker's, on a
// log2 scale where up is better: +1 is twice as good, -1 half as good.
func (s *summary) chart(path string) error {
	p := plot.New()
	p.Title.Text = "make bench: relative to " + s.Brokers[0] + " (up is better)"
	p.Y.Label.Text = "× " + s.Brokers[0] + " (log scale)"
	p.Y.Tick.Marker = timesTicks{}
	var names []string
	var rows []*row
	for _, r := range s.Rows {
		if r.m.unit != "%" && r.Cells[s.Brokers[0]] != nil && r.Cells[s.Brokers[0]].Median > 0 {
			rows = append(rows, r)
			names = append(names, shortName(r.Metric))
		}
	}
	w := vg.Points(12)
	lo, hi := 0.0, 0.0
	for i, br := range s.Brokers {
		vals := make(plotter.Values, len(rows))
		for j, r := range rows {
			c := r.Cells[br]
			if c == nil || c.Median <= 0 {
				continue
			}
			ratio := c.Median / r.Cells[s.Brokers[0]].Median
			if r.Lower {
				ratio = 1 / ratio
			}
			vals[j] = math.Log2(ratio)
			lo, hi = min(lo, vals[j]), max(hi, vals[j])
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		bars.LineStyle.Width = 0
		bars.Color = plotutil.Color(i)
		bars.Offset = w * vg.Length(float64(i)-float64(len(s.Brokers)-1)/2)
		p.Add(bars)
		p.Legend.Add(br, bars)
	}
	p.Add(plotter.NewGrid())
	// Room above the bars for the legend.
	p.Y.Min, p.Y.Max = math.Floor(lo)-0.25, math.Ceil(hi)+1.5
	p.Legend.Top = true
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = math.Pi / 6
	p.X.Tick.Label.XAlign = -0.9
	return p.Save(20*vg.Centimeter, 12*vg.Centimeter, path)
}

func shortName(s string) string {
	r := strings.NewReplacer("RSS per idle subscribed connection", "RSS/conn", "QoS0 ", "", ", delivered", "",
		", 500 in flight", "/500", ", 4,000 in flight", "/4000",
		"connect+subscribe rate", "connects/s", " latency", "", "latency ", "")
	return r.Replace(s)
}

// timesTicks labels a log2 axis as 1/4×, 1/2×, 1×, 2×, 4×...
type timesTicks struct{}

func (timesTicks) Ticks(min, max float64) []plot.Tick {
	var t []plot.Tick
	for k := math.Floor(min); k <= math.Ceil(max); k++ {
		label := fmt.Sprintf("%g×", math.Pow(2, k))
		if k < 0 {
			label = fmt.Sprintf("1/%g×", math.Pow(2, -k))
		}
		t = append(t, plot.Tick{Value: k, Label: label})
	}
	return t
}
