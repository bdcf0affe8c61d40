//go:build unix

package main

import "syscall"

// openFiles returns the soft RLIMIT_NOFILE: every connection is a file
// descriptor.
func openFiles() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	return uint64(r.Cur), true
}
