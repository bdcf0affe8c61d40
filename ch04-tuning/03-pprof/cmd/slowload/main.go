// Command slowload drives a bounded loopback load at the ingestion handler
// of lab 03-pprof, Slow or fixed, and writes CPU, heap, goroutine, mutex
// and block profiles for `go tool pprof`.
//
//	go run ./ch04-tuning/03-pprof/cmd/slowload -impl slow -out /tmp/prof-slow
//	go tool pprof -top /tmp/prof-slow/cpu.pprof
//
// The load is -requests POSTs of -lines lines each from -clients
// goroutines, to a server on 127.0.0.1, and stops by itself (or after
// -timeout). -profile=false runs the same load without profiling, to see
// what profiling costs. With -pprof 127.0.0.1:6060 it also serves net/http/pprof on
// that loopback address while the load runs; any other address is refused.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	lab "floodgate/ch04-tuning/03-pprof"
)

func main() {
	impl := flag.String("impl", "slow", "handler to load: slow or fast")
	requests := flag.Int("requests", 1000, "requests to send")
	clients := flag.Int("clients", 16, "concurrent clients")
	lines := flag.Int("lines", 200, "lines per request")
	devices := flag.Int("devices", 500, "distinct devices")
	auditDelay := flag.Duration("audit-delay", 20*time.Millisecond, "time the audit log takes per record (a slow disk)")
	out := flag.String("out", filepath.Join(os.TempDir(), "floodgate-pprof"), "directory for the profiles")
	pprofAddr := flag.String("pprof", "", "also serve net/http/pprof on this loopback address while the load runs (off by default)")
	timeout := flag.Duration("timeout", 2*time.Minute, "stop the load after this long")
	profile := flag.Bool("profile", true, "profile the run; -profile=false measures the load alone, to see what profiling costs")
	flag.IntVar(&mutexFraction, "mutex-fraction", 5, "with -profile: report 1 in this many mutex contention events (0: mutex profile off)")
	flag.DurationVar(&blockRate, "block-rate", 10*time.Microsecond, "with -profile: sample one blocking event per this much time blocked (0: block profile off)")
	flag.Parse()
	if err := run(*impl, *requests, *clients, *lines, *devices, *auditDelay, *out, *pprofAddr, *timeout, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "slowload:", err)
		os.Exit(1)
	}
}

// The sampling rates of the mutex and block profiles.
var (
	mutexFraction int
	blockRate     time.Duration
)

// slowLog is an audit log that takes delay per write, like a busy disk.
type slowLog struct{ delay time.Duration }

func (l slowLog) Write(p []byte) (int, error) { time.Sleep(l.delay); return len(p), nil }

type handler interface {
	http.Handler
	io.Closer
}

func run(impl string, requests, clients, lines, devices int, auditDelay time.Duration, out, pprofAddr string, timeout time.Duration, profile bool) error {
	if pprofAddr != "" {
		ps, err := lab.ListenPprof(pprofAddr)
		if err != nil {
			return err
		}
		defer ps.Close()
		fmt.Printf("pprof: http://%s/debug/pprof/\n", ps.Addr())
	}
	var h handler
	var dropped func() uint64
	switch impl {
	case "slow":
		h, dropped = lab.NewSlow(slowLog{auditDelay}), func() uint64 { return 0 }
	case "fast":
		in := lab.NewIngester(lab.Config{AuditLog: slowLog{auditDelay}})
		h, dropped = in, in.Dropped
	default:
		return fmt.Errorf("-impl %q: want slow or fast", impl)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if profile {
		runtime.SetMutexProfileFraction(mutexFraction)
		runtime.SetBlockProfileRate(int(blockRate))
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close(); wg.Wait() }()

	if profile {
		cpu, err := os.Create(filepath.Join(out, "cpu.pprof"))
		if err != nil {
			return err
		}
		defer cpu.Close()
		if err := pprof.StartCPUProfile(cpu); err != nil {
			return err
		}
	}
	allocs0, cpu0 := allocs(), cpuTime()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	midGoroutines, err := load(ctx, "http://"+ln.Addr().String()+"/ingest", requests, clients, lines, devices, out, profile)
	wall := time.Since(start)
	if profile {
		pprof.StopCPUProfile()
	}
	cpuPerReq := (cpuTime() - cpu0) / time.Duration(requests)
	if err != nil {
		return err
	}
	perReq := float64(allocs()-allocs0) / float64(requests)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if profile {
		for _, name := range []string{"heap", "mutex", "block"} {
			if err := write(out, name); err != nil {
				return err
			}
		}
	}
	drops := dropped()
	if err := h.Close(); err != nil {
		return err
	}
	fmt.Printf("impl=%s requests=%d lines/request=%d clients=%d\n", impl, requests, lines, clients)
	fmt.Printf("wall %.2fs, %.0f req/s, %.0f allocs/request, %v CPU/request (client and server)\n",
		wall.Seconds(), float64(requests)/wall.Seconds(), perReq, cpuPerReq.Round(time.Microsecond))
	fmt.Printf("goroutines at half-way: %d; audit records dropped: %d; heap in use after GC: %.1f MiB\n",
		midGoroutines, drops, float64(ms.HeapAlloc)/(1<<20))
	if profile {
		fmt.Printf("profiles in %s: cpu heap goroutine mutex block (.pprof)\n", out)
	}
	return nil
}

// load sends the requests and returns the goroutine count half-way, when
// it also writes the goroutine profile.
func load(ctx context.Context, url string, requests, clients, lines, devices int, out string, profile bool) (int, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var next atomic.Int64
	var mid atomic.Int64
	var midOnce sync.Once
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b bytes.Buffer
			for {
				n := int(next.Add(1)) - 1
				if n >= requests {
					return
				}
				if n == requests/2 {
					midOnce.Do(func() {
						mid.Store(int64(runtime.NumGoroutine()))
						if !profile {
							return
						}
						if err := write(out, "goroutine"); err != nil {
							errs <- err
						}
					})
				}
				b.Reset()
				for k := range lines {
					fmt.Fprintf(&b, "sensor-%05d,temp,%d.%d\n", (n*lines+k+c)%devices, k%40, k%10)
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, &b)
				if err != nil {
					errs <- err
					return
				}
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %s", resp.Status)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return int(mid.Load()), errors.Join(all...)
}

// write saves the named runtime/pprof profile to out/name.pprof.
func write(out, name string) error {
	f, err := os.Create(filepath.Join(out, name+".pprof"))
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func allocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
