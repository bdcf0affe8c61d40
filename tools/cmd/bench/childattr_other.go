//go:build !linux

package main

import "syscall"

// childAttr has no parent-death signal outside Linux: a broker outlives a
// bench that is killed, and must then be stopped by hand.
func childAttr() *syscall.SysProcAttr { return nil }
