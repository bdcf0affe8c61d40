package load

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Result is what one run measured. Rates are per second; sizes are bytes.
type Result struct {
	Scenario Scenario  `json:"scenario"`
	Broker   string    `json:"broker"`
	Target   string    `json:"target"`
	Date     time.Time `json:"date"`
	Params   Params    `json:"params"`

	Ready  int64 `json:"ready"`  // connections that became ready
	Failed int64 `json:"failed"` // connections that never did
	Lost   int64 `json:"lost"`   // ready connections the broker closed

	Ramps       []Ramp  `json:"ramps"`
	RampSeconds float64 `json:"ramp_s"`
	ConnectRate float64 `json:"connect_rate"` // connects+subscribes per second over all ramps

	Sent            int64        `json:"sent"`
	Received        int64        `json:"received"`
	Expected        int64        `json:"expected"` // deliveries the sent messages should make
	PublishSeconds  float64      `json:"publish_s"`
	DeliverySeconds float64      `json:"delivery_s"` // from the first publish to the last delivery
	SendRate        float64      `json:"send_rate"`
	Throughput      float64      `json:"throughput"` // deliveries per second
	Latency         *Percentiles `json:"latency,omitempty"`

	BrokerPID        int     `json:"broker_pid,omitempty"`
	BrokerRSSBefore  int64   `json:"broker_rss_before,omitempty"`
	BrokerRSSAfter   int64   `json:"broker_rss_after,omitempty"`
	BrokerRSSPerConn float64 `json:"broker_rss_per_conn,omitempty"`
	LoadgenRSS       int64   `json:"loadgen_rss"`
	// ListenOverflows is how many SYNs the machine dropped on full accept
	// queues during the run (all listeners, from /proc/net/netstat).
	ListenOverflows int64 `json:"listen_overflows"`

	Errors   map[string]int `json:"errors,omitempty"`
	Timeline []Sample       `json:"timeline"`
}

// Params are the settings the run used, defaults filled in.
type Params struct {
	Conns       int     `json:"conns"`
	Rate        float64 `json:"rate"`
	DurationS   float64 `json:"duration_s"`
	HoldS       float64 `json:"hold_s"`
	Payload     int     `json:"payload"`
	Window      int     `json:"window"`
	InFlight    int     `json:"in_flight"`
	Loops       int     `json:"loops"`
	Sources     string  `json:"sources"`
	SourceCount int     `json:"source_count"`
	Protocol    int     `json:"protocol"`
	KeepAlive   int     `json:"keepalive_s"`
	PrivateFDs  bool    `json:"private_fds"`
}

// Ramp is one connect ramp.
type Ramp struct {
	What      string  `json:"what"`
	Conns     int     `json:"conns"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
}

// Loss is the share of expected deliveries that did not arrive.
func (r *Result) Loss() float64 {
	if r.Expected == 0 {
		return 0
	}
	return 1 - float64(r.Received)/float64(r.Expected)
}

// Markdown returns the result as a two-column table.
func (r *Result) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %s: %s on %s | |\n|---|---|\n", r.Scenario, r.Broker, r.Target)
	row := func(k, f string, a ...any) { fmt.Fprintf(&b, "| %s | %s |\n", k, fmt.Sprintf(f, a...)) }
	row("connections ready / failed / lost", "%d / %d / %d", r.Ready, r.Failed, r.Lost)
	for _, rp := range r.Ramps {
		row("ramp: "+rp.What, "%d in %.2f s (%s/s)", rp.Conns, rp.Seconds, si(rp.PerSecond))
	}
	if r.Sent > 0 {
		row("published", "%d in %.2f s (%s msg/s)", r.Sent, r.PublishSeconds, si(r.SendRate))
		row("delivered / expected", "%d / %d (loss %.2f%%)", r.Received, r.Expected, 100*r.Loss())
		row("delivery throughput", "%s msg/s", si(r.Throughput))
	}
	if l := r.Latency; l != nil {
		row("latency p50 / p99 / p99.9 / max", "%s / %s / %s / %s", us(l.P50US), us(l.P99US), us(l.P999US), us(l.MaxUS))
	}
	if r.BrokerPID != 0 {
		row("broker RSS before / after", "%s / %s", mib(r.BrokerRSSBefore), mib(r.BrokerRSSAfter))
		if r.Sent == 0 {
			row("broker RSS per connection", "%.0f B", r.BrokerRSSPerConn)
		}
	}
	row("loadgen RSS", "%s", mib(r.LoadgenRSS))
	if r.ListenOverflows > 0 {
		row("listen queue overflows (machine-wide)", "%d", r.ListenOverflows)
	}
	keys := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		row("error ×"+fmt.Sprint(r.Errors[k]), "%s", strings.ReplaceAll(k, "|", "/"))
	}
	return b.String()
}

func us(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f ms", v/1000)
	}
	return fmt.Sprintf("%.0f µs", v)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// Write writes result.json, result.md and chart.png (the timeline) into
// dir, creating it.
func (r *Result) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("load: write result: %w", err)
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("load: write result: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "result.json"), append(j, '\n'), 0o644); err != nil {
		return fmt.Errorf("load: write result: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "result.md"), []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("load: write result: %w", err)
	}
	return r.Chart(filepath.Join(dir, "chart.png"))
}

// Chart draws the run's timeline: ready connections for the connect
// scenarios, deliveries per second for the others. The file's extension
// (.png or .svg) picks the format.
func (r *Result) Chart(path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: %s", r.Broker, r.Scenario)
	p.X.Label.Text = "seconds"
	pts := make(plotter.XYs, 0, len(r.Timeline))
	label := "deliveries/s"
	for _, s := range r.Timeline {
		y := s.RxPerSec
		if r.Sent == 0 {
			y = float64(s.Ready)
		}
		pts = append(pts, plotter.XY{X: s.T, Y: y})
	}
	if r.Sent == 0 {
		label = "connections ready"
	}
	p.Y.Label.Text = label
	if len(pts) > 0 {
		line, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("load: chart: %w", err)
		}
		p.Add(line, plotter.NewGrid())
		p.Y.Min = 0
	}
	if err := p.Save(16*vg.Centimeter, 9*vg.Centimeter, path); err != nil {
		return fmt.Errorf("load: chart: %w", err)
	}
	return nil
}
