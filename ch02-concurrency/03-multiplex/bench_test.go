//go:build linux

package multiplex

import (
	"fmt"
	"syscall"
	"testing"
)

// pipes opens n pipes in blocking mode, outside Go's netpoller, and returns
// their read ends. Nothing is ever written, so none is ready.
func pipes(b *testing.B, n int) []int {
	b.Helper()
	var rs []int
	for range n {
		var p [2]int
		if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
			b.Fatal(err)
		}
		rs = append(rs, p[0])
		b.Cleanup(func() { syscall.Close(p[0]); syscall.Close(p[1]) })
	}
	return rs
}

// BenchmarkSelect2 calls select(2) with a zero timeout on n descriptors, as
// a C event loop does each time round: rebuild the fd_set, then let the
// kernel scan every descriptor up to the highest.
func BenchmarkSelect2(b *testing.B) {
	for _, n := range []int{8, 64, 400} {
		b.Run(fmt.Sprint("fds=", n), func(b *testing.B) {
			fds := pipes(b, n)
			var set syscall.FdSet
			maxfd := 0
			for _, fd := range fds {
				set.Bits[fd/64] |= 1 << (uint(fd) % 64) // fd >= 1024 would not fit
				maxfd = max(maxfd, fd)
			}
			for b.Loop() {
				for {
					r := set // select(2) overwrites its sets: start again from a copy
					tv := syscall.Timeval{}
					_, err := syscall.Select(maxfd+1, &r, nil, nil, &tv)
					if err == syscall.EINTR { // the runtime's preemption signal
						continue
					}
					if err != nil {
						b.Fatal(err)
					}
					break
				}
			}
		})
	}
}

// BenchmarkEpollWait registers the same n descriptors with epoll once and
// then asks, with a zero timeout, which are ready.
func BenchmarkEpollWait(b *testing.B) {
	for _, n := range []int{8, 64, 400} {
		b.Run(fmt.Sprint("fds=", n), func(b *testing.B) {
			fds := pipes(b, n)
			ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
			if err != nil {
				b.Fatal(err)
			}
			defer syscall.Close(ep)
			for _, fd := range fds {
				ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
				if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
					b.Fatal(err)
				}
			}
			events := make([]syscall.EpollEvent, 64)
			for b.Loop() {
				if _, err := syscall.EpollWait(ep, events, 0); err != nil && err != syscall.EINTR {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGoSelect is Go's select over four channels that are never
// ready, plus a default case: no system call at all, only channel locks.
func BenchmarkGoSelect(b *testing.B) {
	a, c, d, e := make(chan int), make(chan int), make(chan int), make(chan int)
	for b.Loop() {
		select {
		case <-a:
		case <-c:
		case <-d:
		case <-e:
		default:
		}
	}
}
