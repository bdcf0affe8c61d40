//go:build unix

package tcpscale

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// Footprint is what a server's connections cost in Go memory, per
// connection, as runtime.MemStats sees it: heap in use and goroutine stacks.
// Kernel memory (socket buffers, the struct file behind each descriptor) is
// not in it.
type Footprint struct {
	Conns  int   // connections measured
	Heap   int64 // bytes of heap in use per connection
	Stacks int64 // bytes of goroutine stack per connection
	// Slab is the growth of the kernel's slab memory (Slab in
	// /proc/meminfo) per connection, both ends of it: sockets, inodes,
	// dentries. It is machine-wide, so other work on the machine makes it
	// noisy; zero where /proc/meminfo is missing.
	Slab int64
}

// PerConn returns Heap + Stacks.
func (f Footprint) PerConn() int64 { return f.Heap + f.Stacks }

func (f Footprint) String() string {
	return fmt.Sprintf("%d connections: %d B each (heap %d + stacks %d)", f.Conns, f.PerConn(), f.Heap, f.Stacks)
}

// MeasureConns opens n TCP connections to 127.0.0.1:port, echoes one byte on
// each so that the server has done its per-connection set-up, and returns
// the growth of the process's heap and stacks divided by n. The server must
// run in the same process and echo. The connections are made with plain
// system calls, so the client's ends cost the Go heap nothing and the figure
// is the server's alone; they stay open until the caller calls the returned
// close function (which is never nil). Each read waits at most two seconds.
func MeasureConns(port, n int) (Footprint, func(), error) {
	fds := make([]int, 0, n)
	closeAll := func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		fds = fds[:0]
	}
	heap0, stacks0 := goMemory()
	slab0 := slabBytes()
	for i := range n {
		fd, err := rawDial(port)
		if err != nil {
			return Footprint{}, closeAll, fmt.Errorf("measure: dial %d of %d: %w", i+1, n, err)
		}
		fds = append(fds, fd)
		if err := rawEcho(fd); err != nil {
			return Footprint{}, closeAll, fmt.Errorf("measure: echo on connection %d of %d: %w", i+1, n, err)
		}
	}
	heap1, stacks1 := goMemory()
	slab1 := slabBytes()
	return Footprint{
		Slab:   (slab1 - slab0) / int64(n),
		Conns:  n,
		Heap:   (int64(heap1) - int64(heap0)) / int64(n),
		Stacks: (int64(stacks1) - int64(stacks0)) / int64(n),
	}, closeAll, nil
}

// goMemory returns the bytes of heap in use and of goroutine stacks, after
// two full collections (the second frees what the first's finalizers let go).
func goMemory() (heap, stacks uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.StackInuse
}

// rawDial opens a blocking loopback TCP connection whose reads time out
// after two seconds.
func rawDial(port int) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return -1, err
	}
	tv := syscall.Timeval{Sec: 2}
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	if err := syscall.Connect(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// rawEcho writes one byte on fd and expects it back. A read on a socket
// with SO_RCVTIMEO is not restarted after a signal, even with SA_RESTART
// (see signal(7)), and the Go runtime sends signals (SIGURG, to preempt):
// so EINTR means "try again".
func rawEcho(fd int) error {
	if _, err := syscall.Write(fd, []byte{'x'}); err != nil {
		return err
	}
	b := make([]byte, 1)
	n, err := syscall.Read(fd, b)
	for err == syscall.EINTR {
		n, err = syscall.Read(fd, b)
	}
	if err != nil {
		return err
	}
	if n != 1 || b[0] != 'x' {
		return fmt.Errorf("echo: got %q, want %q", b[:n], "x")
	}
	return nil
}

// ConnBudget returns how many connections a test may open to a server in the
// same process: want, or fewer if RLIMIT_NOFILE is low (each connection
// takes two descriptors, one per end), keeping 200 in reserve.
func ConnBudget(want int) int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return max(0, min(want, (int(rl.Cur)-200)/2))
}

// slabBytes returns Slab from /proc/meminfo in bytes, or 0.
func slabBytes() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Slab:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
