// Command density loads one plugin, instantiates it N times concurrently
// (compile once, instantiate many), keeps all N instances busy at once, and
// prints the time and memory each instance costs. It measures the claim that
// one node runs more than 200 WASM plugin instances.
//
//	go run -tags floodgate.solution ./ch05-edge/05-wasm/cmd/density -n 256
//
// Without the tag it runs your code, and fails until Task 3 is done.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	wasm "floodgate/ch05-edge/05-wasm"
)

func main() {
	n := flag.Int("n", 256, "number of instances, at most 4096")
	plugin := flag.String("plugin", "envelope", "plugin to load, a folder under 05-wasm/plugins")
	flag.Parse()
	if err := run(*n, *plugin); err != nil {
		fmt.Fprintln(os.Stderr, "density:", err)
		os.Exit(1)
	}
}

func run(n int, name string) error {
	if n < 1 || n > 4096 {
		return fmt.Errorf("-n %d: want 1..4096", n)
	}
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return fmt.Errorf("cannot find the plugins folder")
	}
	src := filepath.Join(filepath.Dir(self), "..", "..", "plugins", name)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	dir, err := os.MkdirTemp("", "density-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	out := filepath.Join(dir, name+".wasm")
	if err := wasm.BuildPlugin(ctx, src, out); err != nil {
		return err
	}
	code, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	// A generous deadline: with n instances busy on a few cores, a call
	// waits for a CPU far longer than it runs. This measures capacity, not
	// latency.
	host, err := wasm.NewHost(ctx, wasm.Config{CallTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	defer func() { _ = host.Close(context.Background()) }()

	start := time.Now()
	plugin, err := host.Load(ctx, code)
	if err != nil {
		return err
	}
	compiled := time.Since(start)

	heap0, rss0 := memory()
	start = time.Now()
	pool, err := wasm.NewPool(ctx, plugin, n)
	if err != nil {
		return err
	}
	instantiated := time.Since(start)
	defer func() { _ = pool.Close(context.Background()) }()

	// n callers at once: every instance is in use at the same time.
	start = time.Now()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = pool.Handle(ctx, wasm.Message{Topic: "sensors/" + strconv.Itoa(i), Payload: []byte("21.5")})
		}()
	}
	wg.Wait()
	handled := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	heap1, rss1 := memory()
	st := pool.Stats()

	fmt.Printf("plugin %s: %d bytes of wasm, compiled once in %v (wazero %s)\n", name, len(code), compiled.Round(time.Millisecond), wazeroVersion())
	fmt.Printf("instances        %d live (GOMAXPROCS %d)\n", st.Instances, runtime.GOMAXPROCS(0))
	fmt.Printf("instantiate      %v for all, %v per instance\n", instantiated.Round(time.Millisecond), (instantiated / time.Duration(n)).Round(time.Microsecond))
	fmt.Printf("one message each %v for all %d concurrently\n", handled.Round(time.Millisecond), n)
	fmt.Printf("Go heap          %+.1f MiB, %.2f MiB per instance\n", mib(heap1, heap0), mib(heap1, heap0)/float64(n))
	if rss0 > 0 {
		fmt.Printf("process RSS      %+.1f MiB, %.2f MiB per instance\n", mib(rss1, rss0), mib(rss1, rss0)/float64(n))
	}
	return nil
}

// memory returns the live Go heap after a collection, and the process's
// resident set size from /proc (0 where there is no /proc).
func memory() (heap, rss uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return ms.HeapAlloc, 0
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:")); ok {
			kb, _ := strconv.ParseUint(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))), 10, 64)
			rss = kb << 10
		}
	}
	return ms.HeapAlloc, rss
}

// wazeroVersion returns the version of wazero this binary was built with.
func wazeroVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/tetratelabs/wazero" {
				return d.Version
			}
		}
	}
	return "unknown"
}

// mib returns after-before in MiB; it may be negative.
func mib(after, before uint64) float64 { return (float64(after) - float64(before)) / (1 << 20) }
