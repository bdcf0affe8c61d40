//go:build unix

package pools

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// peekRaw makes one non-blocking read(2) of one byte on rc's descriptor
// (Go's sockets are always in non-blocking mode). EAGAIN means nothing is
// waiting, reported as os.ErrDeadlineExceeded, which is a timeout; a read
// of 0 bytes means the peer closed, reported as io.EOF. ok is false when rc
// cannot be read.
func peekRaw(rc syscall.RawConn) (n int, ok bool, err error) {
	var b [1]byte
	cerr := rc.Read(func(fd uintptr) bool {
		n, err = syscall.Read(int(fd), b[:])
		return true // never wait for readiness: this is a check, not a read
	})
	switch {
	case cerr != nil:
		return 0, false, nil
	case errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK):
		return 0, true, os.ErrDeadlineExceeded
	case err != nil:
		return 0, true, err
	case n == 0:
		return 0, true, io.EOF
	}
	return n, true, nil
}
