package main

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
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"floodgate/tools/internal/limits"
	"floodgate/tools/internal/load"
)

// Report is what one c1m run measured: result.json.
type Report struct {
	Date    time.Time `json:"date"`
	Command string    `json:"command"`
	Machine Machine   `json:"machine"`

	Conns       int     `json:"conns"`
	Pairs       int     `json:"pairs"`
	Rate        float64 `json:"rate"`
	HoldS       float64 `json:"hold_s"`
	Loops       int     `json:"loops"`
	SourceCount int     `json:"source_count"`
	KeepAlive   int     `json:"keepalive_s"`

	Fit      limits.Fit      `json:"fit"`
	Applied  []limits.Change `json:"applied,omitempty"`
	Restored []limits.Change `json:"restored,omitempty"`

	BrokerArgv []string `json:"broker_argv"`
	// BrokerSource is what the broker binary was built from.
	BrokerSource string `json:"broker_source,omitempty"`
	BrokerPID    int    `json:"broker_pid"`
	// EngineLine is the broker's log line that describes its epoll
	// engine's plan; Sharded says whether it reports private fd tables.
	EngineLine string `json:"engine_line,omitempty"`
	Sharded    bool   `json:"sharded"`
	BrokerExit string `json:"broker_exit,omitempty"`

	// Figures. RampSeconds is from the first connect to the last SUBACK
	// of the ramp (subscribers and publishers).
	RampSeconds float64 `json:"ramp_s"`
	ConnectRate float64 `json:"connect_rate"`
	// Broker VmRSS before the ramp, after it, and at the end of the hold
	// (the census); BrokerBytesPerConn = (end − before) / held.
	BrokerRSSBefore    int64   `json:"broker_rss_before"`
	BrokerRSSRamped    int64   `json:"broker_rss_ramped"`
	BrokerRSSEnd       int64   `json:"broker_rss_end"`
	BrokerBytesPerConn float64 `json:"broker_bytes_per_conn"`
	// BrokerBytesPerConnRamped = (ramped − before) / ready: idle clients
	// only, before the background load and the sweep.
	BrokerBytesPerConnRamped float64 `json:"broker_bytes_per_conn_ramped"`
	// Kernel slab (/proc/meminfo, machine-wide) before and after the ramp;
	// per connection = delta / connections ready, for Slab and for
	// SUnreclaim (the socket objects are unreclaimable slab).
	SlabBefore         int64   `json:"slab_before"`
	SlabRamped         int64   `json:"slab_ramped"`
	SlabPerConn        float64 `json:"slab_per_conn"`
	SUnreclaimPerConn  float64 `json:"sunreclaim_per_conn"`
	LoadgenRSS         int64   `json:"loadgen_rss"`
	ConntrackPeak      int64   `json:"conntrack_peak"` // -1: no nf_conntrack
	FileNrPeak         int64   `json:"file_nr_peak"`
	MemAvailableLowest int64   `json:"mem_available_lowest"`

	Sent     int64             `json:"sent"`
	Received int64             `json:"received"`
	Latency  *load.Percentiles `json:"latency,omitempty"`

	Census *load.Census `json:"census,omitempty"`
	// BrokerMetrics are the broker's own floodgate_* gauges and counters,
	// read at the end of the hold while every connection is still open.
	BrokerMetrics map[string]float64 `json:"broker_metrics,omitempty"`
	// AllHeld: every one of Conns clients was ready, and at the end of the
	// hold is still open, ESTABLISHED, not lost, (with the sweep) received
	// its message, and the broker counts as many connections.
	AllHeld bool     `json:"all_held"`
	Verdict []string `json:"verdict"`
	Errors  []string `json:"errors,omitempty"`

	Load *load.Result `json:"load"`
}

// Machine describes where the run ran.
type Machine struct {
	CPUs      int    `json:"cpus"`
	MemTotal  int64  `json:"mem_total"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go"`
	// LoadAvg is /proc/loadavg at the start and at the end of the run:
	// the machine is shared, and other processes' load shows here.
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end"`
}

// figures fills in the figures from the load result and checks that every
// client is held.
func (r *Report) figures() {
	res := r.Load
	if res == nil {
		r.Verdict = append(r.Verdict, "no load result")
		return
	}
	r.Sent, r.Received, r.Latency, r.Census, r.LoadgenRSS = res.Sent, res.Received, res.Latency, res.Census, res.LoadgenRSS
	r.BrokerRSSBefore = res.BrokerRSSBefore
	start, ramped, census := res.MarkNamed("start"), res.MarkNamed("ramped"), res.MarkNamed("census")
	if start != nil && ramped != nil {
		r.RampSeconds = ramped.T - start.T
		if r.RampSeconds > 0 {
			r.ConnectRate = float64(ramped.Ready) / r.RampSeconds
		}
		r.SlabBefore, r.SlabRamped, r.BrokerRSSRamped = start.Slab, ramped.Slab, ramped.BrokerRSS
		if n := ramped.Ready; n > 0 {
			if ramped.BrokerRSS > 0 {
				r.BrokerBytesPerConnRamped = float64(ramped.BrokerRSS-r.BrokerRSSBefore) / float64(n)
			}
			r.SlabPerConn = float64(ramped.Slab-start.Slab) / float64(n)
			r.SUnreclaimPerConn = float64(ramped.SUnreclaim-start.SUnreclaim) / float64(n)
		}
	}
	if census != nil {
		r.BrokerRSSEnd = census.BrokerRSS
	}
	if c := r.Census; c != nil && c.Held > 0 && r.BrokerRSSEnd > 0 {
		r.BrokerBytesPerConn = float64(r.BrokerRSSEnd-r.BrokerRSSBefore) / float64(c.Held)
	}
	r.AllHeld, r.Verdict = verdict(r.Conns, r.Census, r.BrokerMetrics, res.Ready)
}

// verdict checks the census against the count wanted and the broker's own
// count; every shortfall is a line.
func verdict(conns int, c *load.Census, m map[string]float64, ready int64) (bool, []string) {
	var v []string
	if c == nil {
		return false, []string{"no census: the run stopped before it"}
	}
	want := int64(conns)
	if ready != want {
		v = append(v, fmt.Sprintf("%s of %s clients became ready (connected and subscribed)", group(ready), group(want)))
	}
	if c.Held != want {
		v = append(v, fmt.Sprintf("%s clients held at the end, %s wanted", group(c.Held), group(want)))
	}
	if c.Established != c.Held {
		v = append(v, fmt.Sprintf("%s held sockets are not in TCP state ESTABLISHED", group(c.Held-c.Established)))
	}
	if c.Lost > 0 {
		v = append(v, fmt.Sprintf("the broker closed %s ready clients", group(c.Lost)))
	}
	if c.Failed > 0 {
		v = append(v, fmt.Sprintf("%s connects failed", group(c.Failed)))
	}
	if c.SweepTargets > 0 && c.Swept != c.SweepTargets {
		v = append(v, fmt.Sprintf("the sweep reached %s of %s idle subscribers", group(c.Swept), group(c.SweepTargets)))
	}
	if m == nil {
		v = append(v, "the broker's metrics could not be read")
	} else {
		if cur := int64(m["connections_current"]); cur != want {
			v = append(v, fmt.Sprintf("the broker counts %s open connections, %s wanted", group(cur), group(want)))
		}
		if subs := int64(m["subscriptions"]); subs < want {
			v = append(v, fmt.Sprintf("the broker holds %s subscriptions, %s wanted", group(subs), group(want)))
		}
	}
	if len(v) == 0 {
		return true, []string{fmt.Sprintf("all %s clients connected and subscribed at the end of the hold", group(want))}
	}
	return false, v
}

// Markdown is the summary: summary.md.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# make c1m: %s connections, %s UTC\n\n", group(int64(r.Conns)), r.Date.Format("2006-01-02 15:04"))
	fmt.Fprintf(&b, "Command: `%s`  \nMachine: %d CPUs, %s RAM, Linux %s, %s; load average %s at the start, %s at the end (shared machine)\n\n",
		r.Command, r.Machine.CPUs, gib(r.Machine.MemTotal), r.Machine.Kernel, r.Machine.GoVersion, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd)
	if r.AllHeld {
		fmt.Fprintf(&b, "**Result: %s.**\n\n", r.Verdict[0])
	} else {
		fmt.Fprintf(&b, "**Result: NOT all held.**\n\n")
		for _, v := range r.Verdict {
			fmt.Fprintf(&b, "- %s\n", v)
		}
		b.WriteString("\n")
	}
	b.WriteString("| | |\n|---|---|\n")
	row := func(k, f string, a ...any) { fmt.Fprintf(&b, "| %s | %s |\n", k, fmt.Sprintf(f, a...)) }
	row("clients (idle subscribers + publishers, all subscribed)", "%s (%s + %s)", group(int64(r.Conns)), group(int64(r.Conns-r.Pairs)), group(int64(r.Pairs)))
	row("load generator", "%d event loops with private fd tables, %d source addresses, keepalive %d s", r.Loops, r.SourceCount, r.KeepAlive)
	row("broker", "`%s` (%s)", strings.Join(shortArgv(r.BrokerArgv), " "), r.BrokerSource)
	if r.EngineLine != "" {
		row("broker engine (its log)", "%s", strings.ReplaceAll(r.EngineLine, "|", "/"))
	}
	row("ramp (connect + subscribe)", "%.1f s (%s/s)", r.RampSeconds, group(int64(r.ConnectRate)))
	row("broker RSS before / ramped / end of hold", "%s / %s / %s", mib(r.BrokerRSSBefore), mib(r.BrokerRSSRamped), mib(r.BrokerRSSEnd))
	row("broker RSS per connection: end of hold; just ramped (idle)", "%s B; %s B", group(int64(r.BrokerBytesPerConn+0.5)), group(int64(r.BrokerBytesPerConnRamped+0.5)))
	row("kernel slab over the ramp (Slab; SUnreclaim)", "%s; %s B per connection (%s → %s machine-wide)",
		group(int64(r.SlabPerConn+0.5)), group(int64(r.SUnreclaimPerConn+0.5)), mib(r.SlabBefore), mib(r.SlabRamped))
	if l := r.Latency; l != nil {
		row("background load", "%s msg/s for %.0f s: %s sent, %s delivered", group(int64(r.Rate)), r.HoldS, group(r.Sent), group(r.Received))
		row("latency p50 / p99 / p99.9 / max", "%s / %s / %s / %s", us(l.P50US), us(l.P99US), us(l.P999US), us(l.MaxUS))
	}
	if c := r.Census; c != nil {
		row("held at the end (client side)", "%s, %s ESTABLISHED; lost %s, failed %s", group(c.Held), group(c.Established), group(c.Lost), group(c.Failed))
		if c.SweepTargets > 0 {
			row("sweep (one message to every idle subscriber)", "%s of %s received", group(c.Swept), group(c.SweepTargets))
		}
	}
	if m := r.BrokerMetrics; m != nil {
		row("broker's count at the end", "%s connections, %s subscriptions, %s sessions; %s closed, %s refused in all",
			group(int64(m["connections_current"])), group(int64(m["subscriptions"])), group(int64(m["sessions"])),
			group(int64(m["connections_closed_total"])), group(int64(m["connections_refused_total"])))
	}
	row("load generator RSS", "%s", mib(r.LoadgenRSS))
	switch {
	case r.ConntrackPeak < 0:
		row("nf_conntrack", "not loaded")
	default:
		row("nf_conntrack_count peak", "%s (loopback %s tracked)", group(r.ConntrackPeak), map[bool]string{true: "is", false: "is not"}[r.ConntrackPeak >= int64(r.Conns)/2])
	}
	row("files in use, peak (fs.file-nr)", "%s", group(r.FileNrPeak))
	row("MemAvailable, lowest", "%s", gib(r.MemAvailableLowest))
	for _, c := range r.Applied {
		row("sysctl raised for the run", "%s %s → %s", c.Key, c.Old, c.New)
	}
	for _, c := range r.Restored {
		row("sysctl restored", "%s → %s%s", c.Key, c.New, errNote(c.Err))
	}
	if r.BrokerExit != "" {
		row("broker exit", "%s", r.BrokerExit)
	}
	for _, e := range r.Errors {
		row("error", "%s", strings.ReplaceAll(e, "|", "/"))
	}
	b.WriteString("\n![connections and broker RSS over the run](chart.png)\n")
	return b.String()
}

func errNote(e string) string {
	if e == "" {
		return ""
	}
	return " FAILED: " + e
}

// shortArgv drops the binary's directory.
func shortArgv(argv []string) []string {
	if len(argv) == 0 {
		return nil
	}
	out := append([]string{filepath.Base(argv[0])}, argv[1:]...)
	return out
}

// redrawReport writes result.json, summary.md and chart.png again from
// dir/result.json, the figures computed anew from its load result.
func redrawReport(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "result.json"))
	if err != nil {
		return err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, "result.json"), err)
	}
	r.figures() // from the load result, as the run did
	return r.Write(dir)
}

// Write writes result.json, summary.md and chart.png into dir.
func (r *Report) Write(dir string) error {
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "result.json"), append(j, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return r.Chart(filepath.Join(dir, "chart.png"))
}

// Chart draws two stacked panels over the run's timeline: connections
// ready, and the broker's RSS with the kernel's slab growth (GiB).
func (r *Report) Chart(path string) error {
	var ready, rss, slab plotter.XYs
	if r.Load != nil {
		var slab0 int64
		for i, s := range r.Load.Timeline {
			if i == 0 {
				slab0 = s.Slab
			}
			ready = append(ready, plotter.XY{X: s.T, Y: float64(s.Ready)})
			if s.BrokerRSS > 0 {
				rss = append(rss, plotter.XY{X: s.T, Y: float64(s.BrokerRSS) / (1 << 30)})
			}
			if s.Slab > 0 && slab0 > 0 {
				slab = append(slab, plotter.XY{X: s.T, Y: float64(s.Slab-slab0) / (1 << 30)})
			}
		}
	}
	top := plot.New()
	top.Title.Text = fmt.Sprintf("make c1m: %s clients, one Floodgate process", group(int64(r.Conns)))
	top.X.Label.Text = "seconds"
	top.Y.Label.Text = "clients connected and subscribed"
	top.Y.Tick.Marker = groupTicks{}
	bottom := plot.New()
	bottom.X.Label.Text = "seconds"
	bottom.Y.Label.Text = "GiB"
	if err := addLine(top, ready, "", 0); err != nil {
		return err
	}
	if err := r.markPhases(top); err != nil {
		return err
	}
	if err := addLine(bottom, rss, "broker RSS", 0); err != nil {
		return err
	}
	if err := addLine(bottom, slab, "kernel slab growth (machine)", 1); err != nil {
		return err
	}
	bottom.Legend.Top, bottom.Legend.Left = true, true
	var top2 float64
	for _, pt := range append(slices.Clone(rss), slab...) {
		top2 = max(top2, pt.Y)
	}
	if top2 > 0 {
		bottom.Y.Max = top2 * 1.3 // room for the legend
	}
	const w, h = 16 * vg.Centimeter, 16 * vg.Centimeter
	img := vgimg.New(w, h)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadY: vg.Points(12), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	canv := plot.Align([][]*plot.Plot{{top}, {bottom}}, tiles, draw.New(img))
	top.Draw(canv[0][0])
	bottom.Draw(canv[1][0])
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("chart: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return nil
}

// phaseLabels names the marks drawn on the chart: where each phase ends.
var phaseLabels = map[string]string{"ramped": "ramped", "published": "load ends", "swept": "swept"}

// markPhases draws a dotted vertical line, labelled, at the end of the
// ramp, of the background load and of the sweep.
func (r *Report) markPhases(p *plot.Plot) error {
	if r.Load == nil || r.Conns == 0 {
		return nil
	}
	y := float64(r.Conns)
	var xys plotter.XYs
	var labels []string
	for _, m := range r.Load.Marks {
		name, ok := phaseLabels[m.Name]
		if !ok {
			continue
		}
		l, err := plotter.NewLine(plotter.XYs{{X: m.T, Y: 0}, {X: m.T, Y: y}})
		if err != nil {
			return fmt.Errorf("chart: %w", err)
		}
		l.Dashes = []vg.Length{vg.Points(1), vg.Points(3)}
		p.Add(l)
		xys = append(xys, plotter.XY{X: m.T, Y: y * 0.04})
		labels = append(labels, " "+name)
	}
	if len(xys) == 0 {
		return nil
	}
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	p.Add(lb)
	return nil
}

func addLine(p *plot.Plot, pts plotter.XYs, name string, style int) error {
	p.Add(plotter.NewGrid())
	p.Y.Min = 0
	if len(pts) == 0 {
		return nil
	}
	l, err := plotter.NewLine(pts)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	l.Width = vg.Points(1.5)
	if style == 1 {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	p.Add(l)
	if name != "" {
		p.Legend.Add(name, l)
	}
	return nil
}

// groupTicks labels the default ticks with thousands separators.
type groupTicks struct{}

func (groupTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = group(int64(ts[i].Value))
		}
	}
	return ts
}

func us(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f ms", v/1000)
	}
	return fmt.Sprintf("%.0f µs", v)
}

func mib(b int64) string { return fmt.Sprintf("%s MiB", group(b>>20)) }

// gib and group are limits.GiB and limits.Group: one way to print sizes
// and counts across the tools.
var (
	gib   = limits.GiB
	group = limits.Group
)
