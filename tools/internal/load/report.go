package load

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
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
	// LatencyCurve is the latency at p50 ... p99.99 and the maximum.
	LatencyCurve []QuantilePoint `json:"latency_curve,omitempty"`

	BrokerPID        int     `json:"broker_pid,omitempty"`
	BrokerRSSBefore  int64   `json:"broker_rss_before,omitempty"`
	BrokerRSSAfter   int64   `json:"broker_rss_after,omitempty"`
	BrokerRSSPerConn float64 `json:"broker_rss_per_conn,omitempty"`
	// LoadgenRSS is the VmRSS of the process that ran Run, read after the
	// load: the load generator and anything else in that process (under
	// make bench, the bench driver and its earlier runs' garbage too).
	LoadgenRSS int64 `json:"loadgen_rss"`
	// ListenOverflows is how many SYNs the machine dropped on full accept
	// queues during the run (all listeners, from /proc/net/netstat).
	ListenOverflows int64 `json:"listen_overflows"`

	// Census (HoldLoad) counts the connections held at the end.
	Census *Census `json:"census,omitempty"`
	// Marks (HoldLoad) are the counters, the broker's RSS and the
	// kernel's slab at the steps of the run: start, ramped, published,
	// swept, census.
	Marks []Mark `json:"marks,omitempty"`

	Errors   map[string]int `json:"errors,omitempty"`
	Timeline []Sample       `json:"timeline"`
}

// Census is what the load generator holds at the end of a HoldLoad run,
// counted by each event loop over its own connections.
type Census struct {
	// Held is the ready connections (CONNACK and SUBACK received) that
	// are still open: the broker has not closed them, as far as the
	// loop has read. Subscribers + Publishers = Held.
	Held        int64 `json:"held"`
	Subscribers int64 `json:"subscribers"`
	Publishers  int64 `json:"publishers"`
	// Established is how many of Held the kernel reports in the TCP
	// state ESTABLISHED (getsockopt TCP_INFO on each socket).
	Established int64 `json:"established"`
	// NotReady is connections still open that never became ready.
	NotReady int64 `json:"not_ready"`
	// SweepTargets idle subscribers were each sent one sweep message
	// (SweepSent in all); Swept of them received it.
	SweepTargets int64 `json:"sweep_targets"`
	SweepSent    int64 `json:"sweep_sent"`
	Swept        int64 `json:"swept"`
	// Lost and Failed are the run's counters at the census: ready
	// connections the broker closed, and connects that failed.
	Lost   int64 `json:"lost"`
	Failed int64 `json:"failed"`
}

func (c *Census) add(o Census) {
	c.Held += o.Held
	c.Subscribers += o.Subscribers
	c.Publishers += o.Publishers
	c.Established += o.Established
	c.NotReady += o.NotReady
	c.Swept += o.Swept
}

// Mark is a snapshot taken at one step of a run.
type Mark struct {
	Name   string  `json:"name"`
	T      float64 `json:"t"` // seconds since the run began
	Ready  int64   `json:"ready"`
	Failed int64   `json:"failed"`
	Lost   int64   `json:"lost"`
	// BrokerRSS is the broker's VmRSS (0 without a broker PID).
	BrokerRSS int64 `json:"broker_rss,omitempty"`
	// Slab and SUnreclaim are the machine's, from /proc/meminfo.
	Slab       int64 `json:"slab"`
	SUnreclaim int64 `json:"sunreclaim"`
}

// MarkNamed returns the mark called name, or nil.
func (r *Result) MarkNamed(name string) *Mark {
	for i := range r.Marks {
		if r.Marks[i].Name == name {
			return &r.Marks[i]
		}
	}
	return nil
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
		if r.Sent == 0 || r.Scenario == HoldLoad {
			row("broker RSS per connection", "%.0f B", r.BrokerRSSPerConn)
		}
	}
	if c := r.Census; c != nil {
		row("census: held (subscribers + publishers)", "%d (%d + %d)", c.Held, c.Subscribers, c.Publishers)
		row("census: TCP ESTABLISHED / not ready", "%d / %d", c.Established, c.NotReady)
		if c.SweepTargets > 0 {
			row("census: sweep reached", "%d of %d subscribers", c.Swept, c.SweepTargets)
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

// Write writes result.json, result.md and chart.png (see Chart) into dir,
// creating it.
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

// Chart draws the run in up to three stacked panels: ready connections
// (connect scenarios) or deliveries per second (the others) over time; the
// broker's RSS per ready connection over time, when a broker PID was given;
// and the latency curve (p50 to p99.99 and the maximum), when messages
// carried timestamps. The file's extension (.png or .svg) picks the format.
func (r *Result) Chart(path string) error {
	var plots []*plot.Plot
	tl := plot.New()
	tl.Title.Text = fmt.Sprintf("%s: %s", r.Broker, r.Scenario)
	tl.X.Label.Text = "seconds"
	tl.Y.Label.Text = "deliveries/s"
	if r.Sent == 0 {
		tl.Y.Label.Text = "connections ready"
	}
	var pts, rss plotter.XYs
	for _, s := range r.Timeline {
		y := s.RxPerSec
		if r.Sent == 0 {
			y = float64(s.Ready)
		}
		pts = append(pts, plotter.XY{X: s.T, Y: y})
		if s.BrokerRSS > 0 && s.Ready > 0 {
			rss = append(rss, plotter.XY{X: s.T, Y: float64(s.BrokerRSS-r.BrokerRSSBefore) / float64(s.Ready)})
		}
	}
	if err := addLine(tl, pts); err != nil {
		return err
	}
	plots = append(plots, tl)
	if len(rss) > 0 {
		p := plot.New()
		p.Title.Text = "broker memory"
		p.X.Label.Text = "seconds"
		p.Y.Label.Text = "RSS growth / ready connection (B)"
		if err := addLine(p, rss); err != nil {
			return err
		}
		plots = append(plots, p)
	}
	if len(r.LatencyCurve) > 0 {
		p := plot.New()
		p.Title.Text = "publish-to-delivery latency"
		p.X.Label.Text = "percentile"
		p.Y.Label.Text = "µs"
		// x is the number of nines: 0.99 -> 2, 0.999 -> 3.
		var lat plotter.XYs
		var ticks []plot.Tick
		for _, q := range r.LatencyCurve {
			x := nines(q.Q)
			lat = append(lat, plotter.XY{X: x, Y: q.US})
			label := fmt.Sprintf("p%g", 100*q.Q)
			if q.Q == 1 {
				label = "max"
			}
			ticks = append(ticks, plot.Tick{Value: x, Label: label})
		}
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
		if err := addLine(p, lat); err != nil {
			return err
		}
		plots = append(plots, p)
	}
	return savePlots(plots, path)
}

// nines maps a quantile to -log10(1-q), with the maximum one step past
// the last finite point.
func nines(q float64) float64 {
	if q >= 1 {
		return 5
	}
	return -math.Log10(1 - q)
}

func addLine(p *plot.Plot, pts plotter.XYs) error {
	if len(pts) == 0 {
		return nil
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return fmt.Errorf("load: chart: %w", err)
	}
	p.Add(line, plotter.NewGrid())
	p.Y.Min = 0
	return nil
}

// savePlots stacks plots vertically into one PNG or SVG file.
func savePlots(plots []*plot.Plot, path string) error {
	w, h := 16*vg.Centimeter, 8*vg.Centimeter*vg.Length(len(plots))
	var c vg.CanvasWriterTo
	if strings.EqualFold(filepath.Ext(path), ".svg") {
		c = vgsvg.New(w, h)
	} else {
		c = vgimg.PngCanvas{Canvas: vgimg.New(w, h)}
	}
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadY: vg.Points(12), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	grid := make([][]*plot.Plot, len(plots))
	for i, p := range plots {
		grid[i] = []*plot.Plot{p}
	}
	canvases := plot.Align(grid, tiles, draw.New(c))
	for i, p := range plots {
		p.Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("load: chart: %w", err)
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("load: chart: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("load: chart: %w", err)
	}
	return nil
}
