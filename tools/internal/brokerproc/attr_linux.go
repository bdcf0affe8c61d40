package brokerproc

import "syscall"

// childAttr puts the child in its own process group and asks the kernel
// to SIGKILL it when the thread that started it exits (Start keeps that
// thread for the child's lifetime): if the tool is killed, its brokers
// die with it instead of running on as orphans.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
