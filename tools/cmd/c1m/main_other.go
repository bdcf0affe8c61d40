//go:build !linux

package main

import (
	"fmt"
	"os"
)

// c1m needs Linux: private fd tables (unshare), epoll, Pdeathsig, /proc.
func main() {
	fmt.Fprintln(os.Stderr, "c1m: Linux only")
	os.Exit(2)
}
