//go:build !unix

package pools

import "syscall"

// peekRaw is not available here: CheckAlive falls back to a read with a
// past deadline.
func peekRaw(syscall.RawConn) (n int, ok bool, err error) { return 0, false, nil }
