// Package gmp is an experiment on Go's scheduler (G, M and P): it parks
// thousands of goroutines, first on loopback TCP reads and then inside
// blocking read(2) system calls, and counts the operating-system threads
// each case costs.
//
// A goroutine waiting on the network is parked by the netpoller and holds no
// thread. A goroutine inside a system call that the netpoller does not know
// about (a read on a pipe opened in blocking mode, a read on a slow disk)
// holds its thread (its M) for as long as the call lasts; the runtime hands
// the goroutine's P to another M so that the rest of the program keeps
// running, which is why the thread count grows with every such call.
//
// There is no stub: run the experiment with
//
//	go run ./ch02-concurrency/01-gmp/cmd/gmp
//
// and read the lesson (README.md). The tests check that the measuring
// helpers in this package return sane numbers.
package gmp

// Mode says where a parked goroutine waits.
type Mode string

const (
	// Network parks each goroutine in a Read on a loopback TCP connection.
	Network Mode = "net"
	// Syscall parks each goroutine in read(2) on a pipe in blocking mode,
	// called through syscall.Read, which the netpoller never sees.
	Syscall Mode = "syscall"
)

// Result is one measurement: how many OS threads the process had before and
// while Goroutines goroutines were parked in Mode, at GOMAXPROCS Procs.
type Result struct {
	Mode       Mode
	Goroutines int
	Procs      int
	// ThreadsBefore and ThreadsParked come from Threads (/proc/self/status).
	ThreadsBefore int
	ThreadsParked int
	// ThreadsAfter is the count once every parked goroutine has returned:
	// the runtime keeps idle threads, it does not give them back.
	ThreadsAfter int
	// ThreadCreate is the runtime/pprof "threadcreate" profile count: the
	// threads the runtime has ever created.
	ThreadCreate int
}
