// Command gmp runs the GMP experiment: it parks goroutines on the network
// or in blocking system calls and prints how many OS threads that costs.
//
// With no flags it runs a sweep, each case in a fresh child process so that
// threads left over from one case do not count in the next:
//
//	go run ./ch02-concurrency/01-gmp/cmd/gmp
//
// One case:
//
//	go run ./ch02-concurrency/01-gmp/cmd/gmp -mode net -n 10000 -procs 2
//	go run ./ch02-concurrency/01-gmp/cmd/gmp -mode syscall -n 1000 -trace trace.out
//
// Everything runs on 127.0.0.1, is bounded by -n and stops by itself.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/trace"
	"time"

	"floodgate/ch02-concurrency/01-gmp"
)

func main() {
	mode := flag.String("mode", "", "net or syscall; empty runs the sweep")
	n := flag.Int("n", 10000, "goroutines to park (at most 20000)")
	procs := flag.Int("procs", runtime.NumCPU(), "GOMAXPROCS for this case")
	traceFile := flag.String("trace", "", "write a runtime/trace of the case to this file")
	maxThreads := flag.Int("maxthreads", 0, "if > 0, debug.SetMaxThreads(this) first")
	dial := flag.String("dial", "", "internal: dial -n connections to this address and hold them until stdin closes")
	flag.Parse()
	if *n < 1 || *n > 20000 {
		fail(errors.New("-n must be between 1 and 20000"))
	}
	var err error
	switch {
	case *dial != "":
		err = holdConns(*dial, *n)
	case *mode == "":
		err = sweep()
	default:
		if *maxThreads > 0 {
			debug.SetMaxThreads(*maxThreads)
		}
		var r gmp.Result
		r, err = measure(gmp.Mode(*mode), *n, *procs, *traceFile)
		if err == nil {
			err = json.NewEncoder(os.Stdout).Encode(r)
		}
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gmp:", err)
	os.Exit(1)
}

// sweep runs each case in a child process and prints one table.
func sweep() error {
	cases := []struct {
		mode  gmp.Mode
		n     int
		procs int
	}{
		{gmp.Network, 10000, 1}, {gmp.Network, 10000, 2}, {gmp.Network, 10000, 8},
		{gmp.Syscall, 1000, 1}, {gmp.Syscall, 1000, 2}, {gmp.Syscall, 1000, 8},
		{gmp.Syscall, 5000, 2},
	}
	fmt.Printf("%-8s %7s %10s %8s %8s %8s %13s\n",
		"mode", "parked", "GOMAXPROCS", "before", "parked", "after", "threadcreate")
	for _, c := range cases {
		out, err := exec.Command(os.Args[0], "-mode", string(c.mode),
			"-n", fmt.Sprint(c.n), "-procs", fmt.Sprint(c.procs)).Output()
		if err != nil {
			return fmt.Errorf("case %s/%d/%d: %w", c.mode, c.n, c.procs, err)
		}
		var r gmp.Result
		if err := json.Unmarshal(out, &r); err != nil {
			return fmt.Errorf("case %s/%d/%d: %w", c.mode, c.n, c.procs, err)
		}
		fmt.Printf("%-8s %7d %10d %8d %8d %8d %13d\n", r.Mode, r.Goroutines,
			r.Procs, r.ThreadsBefore, r.ThreadsParked, r.ThreadsAfter, r.ThreadCreate)
	}
	return nil
}

// measure parks n goroutines in mode and counts threads before, during and
// after.
func measure(mode gmp.Mode, n, procs int, traceFile string) (gmp.Result, error) {
	runtime.GOMAXPROCS(procs)
	r := gmp.Result{Mode: mode, Goroutines: n, Procs: procs}

	// For the network case, the client ends live in a child process: 10,000
	// connections are 20,000 descriptors when both ends share one process.
	var conns []net.Conn
	var stop func() error
	if mode == gmp.Network {
		var err error
		conns, stop, err = dialFromChild(n)
		if err != nil {
			return r, err
		}
		defer stop()
	}

	var err error
	if r.ThreadsBefore, err = gmp.Threads(); err != nil {
		return r, err
	}
	if traceFile != "" {
		f, err := os.Create(traceFile)
		if err != nil {
			return r, err
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return r, err
		}
		defer trace.Stop()
	}

	var p *gmp.Parked
	state := "IO wait"
	switch mode {
	case gmp.Network:
		p = gmp.ParkOnConns(conns)
	case gmp.Syscall:
		state = "syscall"
		if p, err = gmp.ParkInPipeReads(n); err != nil {
			return r, err
		}
	default:
		return r, fmt.Errorf("unknown mode %q", mode)
	}
	if err := gmp.WaitParked(state, n, time.Minute); err != nil {
		p.Release()
		return r, err
	}
	if r.ThreadsParked, err = gmp.Threads(); err != nil {
		p.Release()
		return r, err
	}
	if err := p.Release(); err != nil {
		return r, err
	}
	if r.ThreadsAfter, err = gmp.Threads(); err != nil {
		return r, err
	}
	r.ThreadCreate = gmp.ThreadCreate()
	return r, nil
}

// dialFromChild starts this program again as a dialer that opens n
// connections to a fresh listener, accepts them and returns the server ends.
// stop closes them and ends the child.
func dialFromChild(n int) ([]net.Conn, func() error, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	child := exec.Command(os.Args[0], "-dial", ln.Addr().String(), "-n", fmt.Sprint(n))
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := child.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() error {
		stdin.Close()
		return child.Wait()
	}
	conns := make([]net.Conn, 0, n)
	for range n {
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(time.Minute))
		c, err := ln.Accept()
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, nil, errors.Join(err, stop())
		}
		conns = append(conns, c)
	}
	return conns, func() error {
		for _, c := range conns {
			c.Close()
		}
		return stop()
	}, nil
}

// holdConns is the dialer child: it opens n connections and holds them until
// its stdin closes, or for two minutes at most.
func holdConns(addr string, n int) error {
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
	}
	return nil
}
