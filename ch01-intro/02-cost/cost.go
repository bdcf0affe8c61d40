package cost

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
)

// Sample is the process's memory and thread counts at one moment.
type Sample struct {
	Goroutines  int
	Threads     int    // /proc/self/status Threads
	StackInuse  uint64 // runtime.MemStats.StackInuse: goroutine stacks
	HeapInuse   uint64 // runtime.MemStats.HeapInuse: includes g structs
	VmRSS       uint64 // resident memory of the process, bytes
	VmSize      uint64 // virtual memory of the process, bytes
	KernelStack uint64 // /proc/meminfo KernelStack: every thread's kernel stack, system-wide
}

// TakeSample runs a GC and returns freed memory to the OS, so that dead
// objects do not count, then reads the runtime's and the kernel's figures.
func TakeSample() (Sample, error) {
	debug.FreeOSMemory() // a GC, and freed pages go back to the OS so that VmRSS counts only live memory
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := Sample{Goroutines: runtime.NumGoroutine(), StackInuse: ms.StackInuse, HeapInuse: ms.HeapInuse}
	status, err := readKV("/proc/self/status")
	if err != nil {
		return s, err
	}
	meminfo, err := readKV("/proc/meminfo")
	if err != nil {
		return s, err
	}
	s.Threads = int(status["Threads"])
	s.VmRSS = status["VmRSS"]
	s.VmSize = status["VmSize"]
	s.KernelStack = meminfo["KernelStack"]
	return s, nil
}

// readKV reads a /proc file of "Key:   value [kB]" lines; values in kB are
// returned in bytes.
func readKV(path string) (map[string]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cost: %w (this experiment needs Linux's /proc)", err)
	}
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) == 2 && f[1] == "kB" {
			n *= 1024
		}
		out[k] = n
	}
	return out, sc.Err()
}

// Cost is the difference between two samples, per unit (goroutine or
// thread) added between them.
type Cost struct {
	N           int     // units added
	Threads     int     // OS threads added (idle threads may be reused, so this can be below N)
	ThreadsHeld int     // OS threads in the process while the units were held
	Stack       float64 // goroutine stack bytes per unit
	Heap        float64 // Go heap bytes per unit
	RSS         float64 // resident bytes per unit
	Virtual     float64 // virtual bytes per unit
	KernelStack float64 // kernel stack bytes per unit
}

func diff(n int, a, b Sample) Cost {
	per := func(x, y uint64) float64 { return (float64(y) - float64(x)) / float64(n) }
	return Cost{
		N:           n,
		Threads:     b.Threads - a.Threads,
		ThreadsHeld: b.Threads,
		Stack:       per(a.StackInuse, b.StackInuse),
		Heap:        per(a.HeapInuse, b.HeapInuse),
		RSS:         per(a.VmRSS, b.VmRSS),
		Virtual:     per(a.VmSize, b.VmSize),
		KernelStack: per(a.KernelStack, b.KernelStack),
	}
}

// ErrN is returned for a count below 1.
var ErrN = errors.New("cost: n must be at least 1")

// Goroutines starts n goroutines that block on a channel, measures the
// process with them parked, then releases them and waits for them to end.
func Goroutines(n int) (Cost, error) {
	if n < 1 {
		return Cost{}, ErrN
	}
	return hold(n, false)
}

// Threads starts n goroutines that each lock themselves to an OS thread and
// block, so the runtime must create a thread for each; it measures, then
// releases them. A locked goroutine that exits takes its thread with it, so
// the threads end too.
func Threads(n int) (Cost, error) {
	if n < 1 {
		return Cost{}, ErrN
	}
	return hold(n, true)
}

func hold(n int, lock bool) (Cost, error) {
	before, err := TakeSample()
	if err != nil {
		return Cost{}, err
	}
	release := make(chan struct{})
	var started, done sync.WaitGroup
	started.Add(n)
	done.Add(n)
	for range n {
		go func() {
			defer done.Done()
			if lock {
				runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
			}
			started.Done()
			<-release
		}()
	}
	started.Wait()
	after, err := TakeSample()
	close(release)
	done.Wait()
	if err != nil {
		return Cost{}, err
	}
	return diff(n, before, after), nil
}

// StackLimit returns RLIMIT_STACK's soft limit: the virtual stack that a
// thread made by pthread_create (C, Java, Go with cgo) reserves by default.
func StackLimit() (uint64, error) {
	return stackLimit()
}
