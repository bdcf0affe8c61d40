package main

import "syscall"

// childAttr puts a broker in its own process group, so that a Ctrl-C at the
// terminal reaches bench alone and bench stops the broker in order, and asks
// the kernel to SIGKILL it when the thread that started it exits: if bench is
// killed, its brokers die with it instead of running on as orphans. spawn
// keeps that thread alive for the child's lifetime.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
