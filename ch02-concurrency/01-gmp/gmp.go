package gmp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotParked is returned by WaitParked when the goroutines did not all
// reach the expected state before the deadline.
var ErrNotParked = errors.New("gmp: goroutines not parked in time")

// Threads returns the number of OS threads of this process, read from the
// Threads line of /proc/self/status (Linux only).
func Threads() (int, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("threads: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return 0, fmt.Errorf("threads: %w", err)
			}
			return n, nil
		}
	}
	if err := s.Err(); err != nil {
		return 0, fmt.Errorf("threads: %w", err)
	}
	return 0, errors.New("threads: no Threads line in /proc/self/status")
}

// ThreadCreate returns the count of the runtime/pprof "threadcreate"
// profile: every M the runtime has created since the process started.
func ThreadCreate() int {
	return pprof.Lookup("threadcreate").Count()
}

// States counts goroutines by the state the runtime prints in a full stack
// dump, such as "IO wait", "syscall", "chan receive" or "running". Waiting
// durations ("IO wait, 2 minutes") are trimmed off. It stops the world
// briefly, so call it from measuring code, not from a hot path.
func States() map[string]int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	states := make(map[string]int)
	for line := range bytes.Lines(buf) {
		if !bytes.HasPrefix(line, []byte("goroutine ")) {
			continue
		}
		open := bytes.IndexByte(line, '[')
		end := bytes.IndexByte(line, ']')
		if open < 0 || end < open {
			continue
		}
		state, _, _ := strings.Cut(string(line[open+1:end]), ",")
		states[state]++
	}
	return states
}

// WaitParked polls States until at least n goroutines are in state, or
// returns ErrNotParked once timeout has passed. Polling is the only way to
// see a goroutine enter the kernel; this is measuring code, not a way to
// order goroutines.
func WaitParked(state string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got := States()[state]
		if got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %d of %d in %q", ErrNotParked, got, n, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Parked is a group of goroutines parked on purpose. Release wakes them and
// waits for every one to return.
type Parked struct {
	wg      sync.WaitGroup
	release func() error
	once    sync.Once
	err     error
}

// Release wakes every parked goroutine, waits until all have returned and
// frees what the group opened. It is safe to call more than once.
func (p *Parked) Release() error {
	p.once.Do(func() {
		p.err = p.release()
		p.wg.Wait()
	})
	return p.err
}

// ParkOnConns starts one goroutine per connection, each blocked in Read.
// Release closes the connections, which wakes the readers.
func ParkOnConns(conns []net.Conn) *Parked {
	p := &Parked{}
	for _, c := range conns {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			var b [1]byte
			_, _ = c.Read(b[:]) // parks in the netpoller until Release
		}()
	}
	p.release = func() error {
		var errs []error
		for _, c := range conns {
			errs = append(errs, c.Close())
		}
		return errors.Join(errs...)
	}
	return p
}

// ParkInPipeReads starts n goroutines, each blocked in read(2) on the read
// end of one pipe opened in blocking mode. syscall.Read goes straight to the
// kernel, so each goroutine holds its thread until the call returns.
// Release closes the write end: every reader gets end-of-file and returns.
func ParkInPipeReads(n int) (*Parked, error) {
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("park in pipe reads: %w", err)
	}
	r, w := fds[0], fds[1]
	p := &Parked{}
	for range n {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			var b [1]byte
			_, _ = syscall.Read(r, b[:]) // blocks in the kernel until Release
		}()
	}
	p.release = func() error {
		err := syscall.Close(w)
		p.wg.Wait()
		return errors.Join(err, syscall.Close(r))
	}
	return p, nil
}

// Loopback opens n TCP connections over 127.0.0.1 and returns the
// server-side ends; close them all when done. The client ends are returned
// too, so the caller can keep them open (in another process, for large n,
// to stay under the open-file limit: see cmd/gmp).
func Loopback(n int) (server, client []net.Conn, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("loopback: %w", err)
	}
	defer ln.Close()
	closeAll := func() {
		for _, c := range append(server, client...) {
			c.Close()
		}
	}
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("loopback: dial: %w", err)
		}
		client = append(client, c)
		s, err := ln.Accept()
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("loopback: accept: %w", err)
		}
		server = append(server, s)
	}
	return server, client, nil
}
