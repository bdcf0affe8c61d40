// Package brokerproc starts, watches and stops the broker processes that
// the load tools (tools/cmd/bench, tools/cmd/c1m) measure, and finds the
// workspace their binaries are built from.
//
// On Linux a process started by Start runs in its own process group, so a
// Ctrl-C at the terminal reaches the tool alone and the tool stops the
// broker in order, and the kernel SIGKILLs it if the tool dies, even by
// SIGKILL (a parent-death signal), so no broker is left holding its port
// and memory. Elsewhere it stays in the tool's process group and outlives
// a killed tool, which must then be stopped by hand. Stop and Kill signal
// only the PID that Start started.
package brokerproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Process is a process that Start started. Its methods are safe for
// concurrent use.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when Wait returned
	err    error         // Wait's error, set before exited is closed
}

// Start starts argv (argv[0] looked up as exec.Command does) with its
// standard output and error to out, and one goroutine that waits for it
// and ends when it exits. The caller must end the process (Stop, Kill,
// or by itself) to end that goroutine.
//
// On Linux the parent-death signal fires when the OS thread that started
// the child exits, not the process, and Go may end a thread while the
// process runs on (a goroutine that exits while locked to its thread
// takes the thread with it). So the goroutine that starts the child locks
// itself to its thread and keeps it, in cmd.Wait, until the child has
// exited: no other goroutine runs on that thread meanwhile, so nothing
// can end it early. It costs one OS thread per running process.
func Start(argv []string, out io.Writer) (*Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("brokerproc: empty command line")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = childAttr()
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread() // only once the child is gone
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// PID is the process's ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited and been waited for.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is how the process ended (cmd.Wait's error: nil for exit status 0).
// It is meaningful only once Exited is closed, and nil before.
func (p *Process) Err() error {
	select {
	case <-p.exited:
		return p.err
	default:
		return nil
	}
}

// Kill sends SIGKILL to the process's PID and returns at once; Exited
// closes when it is gone. It does nothing once the process has exited.
func (p *Process) Kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
	}
}

// Ending says how Stop found or ended the process.
type Ending int

const (
	// AlreadyExited: the process had exited by itself before Stop.
	AlreadyExited Ending = iota
	// Terminated: it exited within the grace period after SIGTERM.
	Terminated
	// Killed: it was still there after the grace period and got SIGKILL.
	Killed
)

// Stop ends the process: SIGTERM to its PID, and SIGKILL if it is still
// there after grace. It returns once the process has exited, and says how
// it ended; Err then gives the exit status.
func (p *Process) Stop(grace time.Duration) Ending {
	select {
	case <-p.exited:
		return AlreadyExited
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
		return Terminated
	case <-t.C:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return Killed
}

// ErrExited is WaitListening's error when the process exits before it
// accepts connections.
var ErrExited = errors.New("exited before it listened")

// ErrNotListening is WaitListening's error when the process is still
// running but not accepting connections after the timeout.
var ErrNotListening = errors.New("did not listen in time")

// WaitListening dials TCP addr every 20 ms (each dial bounded by 200 ms)
// until a connection succeeds, and returns nil then. It returns ErrExited
// if the process exits first, ErrNotListening after timeout, or ctx's
// error if ctx ends first. It does not stop the process.
func (p *Process) WaitListening(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.exited:
			return ErrExited
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return ErrNotListening
		case <-poll.C:
		}
	}
}

// FreePort asks the kernel for a free loopback port (it listens on
// 127.0.0.1:0 and closes). Another process could take the port before
// the broker binds it; starting the broker then fails and says so.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ErrNoWorkspace is Workspace's error outside a go.work workspace.
var ErrNoWorkspace = errors.New("not inside the Floodgate workspace (no go.work)")

// Workspace returns the folder of the go.work that the go command uses
// here (`go env GOWORK`), or ErrNoWorkspace if there is none (or
// GOWORK=off).
func Workspace(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOWORK").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOWORK: %w", err)
	}
	w := strings.TrimSpace(string(out))
	if w == "" || w == "off" {
		return "", ErrNoWorkspace
	}
	return filepath.Dir(w), nil
}
