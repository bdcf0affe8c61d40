//go:build !linux

package brokerproc

import "syscall"

// childAttr asks for nothing outside Linux: the child has no parent-death
// signal (it outlives a tool that is killed, and must then be stopped by
// hand) and stays in the tool's process group.
func childAttr() *syscall.SysProcAttr { return nil }
