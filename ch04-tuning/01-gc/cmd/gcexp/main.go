// Command gcexp runs the ingestion pipeline of lab 01-gc under several
// GOGC and GOMEMLIMIT settings and prints what the garbage collector did,
// read from runtime/metrics: cycles, pauses, the CPU it took, and the peak
// heap.
//
//	go run -tags floodgate.solution ./ch04-tuning/01-gc/cmd/gcexp
//
// Each setting runs in a child process (this same binary, with GOGC and
// GOMEMLIMIT in its environment), so no run inherits another's heap. Every
// child stops by itself after -n lines; the parent gives each two minutes.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"text/tabwriter"
	"time"

	gc "floodgate/ch04-tuning/01-gc"
)

// result is what a child reports, as one JSON line.
type result struct {
	Lines       int     `json:"lines"`
	Wall        float64 `json:"wall_s"`
	Cycles      uint64  `json:"gc_cycles"`
	PauseP50    float64 `json:"pause_p50_s"`
	PauseMax    float64 `json:"pause_max_s"`
	GCCPU       float64 `json:"gc_cpu_fraction"`
	PeakHeap    uint64  `json:"peak_heap_bytes"`
	PeakTotal   uint64  `json:"peak_total_bytes"`
	AllocsPerLn float64 `json:"allocs_per_line"`
}

func main() {
	child := flag.String("child", "", "internal: run one measurement with this implementation (naive or fast)")
	n := flag.Int("n", 3_000_000, "lines to ingest per run")
	devices := flag.Int("devices", 100_000, "distinct devices (the live heap grows with them)")
	flag.Parse()
	if *child != "" {
		if err := measure(*child, *n, *devices); err != nil {
			fmt.Fprintln(os.Stderr, "gcexp:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*n, *devices); err != nil {
		fmt.Fprintln(os.Stderr, "gcexp:", err)
		os.Exit(1)
	}
}

// settings are the environments compared, in order.
var settings = [][2]string{
	{"100", ""}, // the default
	{"50", ""},
	{"400", ""},
	{"off", "256MiB"},
	{"100", "40MiB"},
}

func run(n, devices int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Printf("%d lines from %d devices per run; GOMAXPROCS=%d; %s\n\n", n, devices, runtime.GOMAXPROCS(0), runtime.Version())
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "GOGC\tGOMEMLIMIT\tparser\twall\tGC cycles\tGC CPU\tpause p50\tpause max\tpeak heap\tpeak total\tallocs/line\t")
	for _, impl := range []string{"naive", "fast"} {
		for _, s := range settings {
			r, err := child(self, impl, s, n, devices)
			if errors.Is(err, errNotImplemented) {
				fmt.Fprintf(tw, "%s\t%s\t%s\t(Parse and Aggregator.Add are not written yet)\t\t\t\t\t\t\t\t\n", s[0], or(s[1], "-"), impl)
				break
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.2fs\t%d\t%.1f%%\t%s\t%s\t%.1f MiB\t%.1f MiB\t%.2f\t\n",
				s[0], or(s[1], "-"), impl, r.Wall, r.Cycles, 100*r.GCCPU,
				dur(r.PauseP50), dur(r.PauseMax), mib(r.PeakHeap), mib(r.PeakTotal), r.AllocsPerLn)
		}
	}
	return tw.Flush()
}

var errNotImplemented = errors.New("not implemented")

func child(self, impl string, s [2]string, n, devices int) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "-child", impl, "-n", fmt.Sprint(n), "-devices", fmt.Sprint(devices))
	cmd.Env = append(os.Environ(), "GOGC="+s[0], "GOMEMLIMIT="+or(s[1], "off"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if bytes.Contains(errb.Bytes(), []byte("not implemented")) {
			return result{}, errNotImplemented
		}
		return result{}, fmt.Errorf("child %s %v: %w: %s", impl, s, err, errb.Bytes())
	}
	var r result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return result{}, fmt.Errorf("child %s %v output: %w", impl, s, err)
	}
	return r, nil
}

// measure ingests n lines with one implementation and prints a result.
func measure(impl string, n, devices int) error {
	parse, add := gc.ParseNaive, (&gc.NaiveAggregator{}).Add
	if impl == "fast" {
		if _, err := gc.Parse([]byte("a,temp,1,2")); err != nil {
			return errNotImplemented
		}
		parse, add = gc.Parse, (&gc.Aggregator{}).Add
	}
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/total:bytes"},
	}
	var peakHeap, peakTotal uint64
	sample := func() {
		metrics.Read(samples)
		peakHeap = max(peakHeap, samples[0].Value.Uint64())
		peakTotal = max(peakTotal, samples[1].Value.Uint64())
	}
	before := readEnd()
	start := time.Now()
	i := 0
	lines, err := gc.Ingest(&gc.Lines{N: n, Devices: devices}, parse, func(r gc.Reading) {
		add(r)
		if i++; i%20_000 == 0 {
			sample()
		}
	})
	wall := time.Since(start)
	sample()
	if err != nil {
		return err
	}
	after := readEnd()
	p50, pmax := pauses(after.pauses)
	r := result{
		Lines:       lines,
		Wall:        wall.Seconds(),
		Cycles:      after.cycles - before.cycles,
		PauseP50:    p50,
		PauseMax:    pmax,
		GCCPU:       ratio(after.gcCPU-before.gcCPU, after.totalCPU-before.totalCPU),
		PeakHeap:    peakHeap,
		PeakTotal:   peakTotal,
		AllocsPerLn: float64(after.allocs-before.allocs) / float64(lines),
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

type snapshot struct {
	cycles, allocs  uint64
	gcCPU, totalCPU float64
	pauses          *metrics.Float64Histogram
}

func readEnd() snapshot {
	s := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/gc/heap/allocs:objects"},
		{Name: "/cpu/classes/gc/total:cpu-seconds"},
		{Name: "/cpu/classes/total:cpu-seconds"},
		{Name: "/sched/pauses/total/gc:seconds"},
	}
	metrics.Read(s)
	return snapshot{
		cycles: s[0].Value.Uint64(), allocs: s[1].Value.Uint64(),
		gcCPU: s[2].Value.Float64(), totalCPU: s[3].Value.Float64(),
		pauses: s[4].Value.Float64Histogram(),
	}
}

// pauses returns the median and the largest stop-the-world GC pause, as
// the upper bounds of their histogram buckets.
func pauses(h *metrics.Float64Histogram) (p50, pmax float64) {
	var total uint64
	for _, c := range h.Counts {
		total += c
	}
	var seen uint64
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		upper := h.Buckets[i+1]
		if math.IsInf(upper, 1) {
			upper = h.Buckets[i]
		}
		if seen < (total+1)/2 && seen+c >= (total+1)/2 {
			p50 = upper
		}
		seen += c
		pmax = upper
	}
	return p50, pmax
}

func dur(s float64) string {
	if s == 0 {
		return "-"
	}
	return time.Duration(s * 1e9).Round(time.Microsecond / 10).String()
}

// ratio is a/b, or 0 when b is 0: the runtime updates its CPU estimates
// only at a GC, so a run without one has none.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
