// Command cost prints what a parked goroutine and a blocked OS thread cost
// on this machine.
//
//	go run ./ch01-intro/02-cost/cmd/cost [-goroutines 100000] [-threads 1000]
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"floodgate/ch01-intro/02-cost"
)

func main() {
	g := flag.Int("goroutines", 100_000, "goroutines to park")
	t := flag.Int("threads", 1_000, "OS threads to block (each a locked goroutine)")
	flag.Parse()

	gc, err := cost.Goroutines(*g)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tc, err := cost.Threads(*t)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%s %s/%s, GOMAXPROCS=%d\n\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
	fmt.Printf("%-28s %12s %12s\n", "per unit, bytes", "goroutine", "OS thread")
	fmt.Printf("%-28s %12d %12d\n", "units measured", gc.N, tc.N)
	fmt.Printf("%-28s %12d %12d\n", "OS threads added", gc.Threads, tc.Threads)
	row := func(name string, a, b float64) { fmt.Printf("%-28s %12.0f %12.0f\n", name, a, b) }
	row("goroutine stack (runtime)", gc.Stack, tc.Stack)
	row("Go heap (g, m structs)", gc.Heap, tc.Heap)
	row("resident (VmRSS)", gc.RSS, tc.RSS)
	row("virtual (VmSize)", gc.Virtual, tc.Virtual)
	row("kernel stack (KernelStack)", gc.KernelStack, tc.KernelStack)
	if lim, err := cost.StackLimit(); err == nil {
		fmt.Printf("\nA thread from pthread_create (C, the JVM, Go with cgo) reserves RLIMIT_STACK = %d KiB of virtual stack.\n", lim/1024)
	}
}
