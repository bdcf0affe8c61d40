//go:build floodgate.solution

package cross

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// BuildEnv returns the environment variables, as "KEY=value" strings, that
// make `go build` produce a static binary for t: CGO_ENABLED=0, GOOS,
// GOARCH, and GOARM or GOMIPS only when t sets them. Append the result to
// os.Environ(): later entries win.
func BuildEnv(t Target) []string {
	env := []string{"CGO_ENABLED=0", "GOOS=" + t.GOOS, "GOARCH=" + t.GOARCH}
	if t.GOARM != "" {
		env = append(env, "GOARM="+t.GOARM)
	}
	if t.GOMIPS != "" {
		env = append(env, "GOMIPS="+t.GOMIPS)
	}
	return env
}

// ParseReady parses a readiness line, "edged ready addr=IP:PORT
// arch=GOOS/GOARCH" (a trailing "\n" or "\r\n" is allowed). Any other line,
// a missing field or an address without a port returns an error wrapping
// ErrNotReady.
func ParseReady(line string) (Ready, error) {
	line = strings.TrimRight(line, "\r\n")
	rest, ok := strings.CutPrefix(line, ReadyPrefix)
	if !ok {
		return Ready{}, fmt.Errorf("%w: %q", ErrNotReady, line)
	}
	var r Ready
	var haveAddr, haveArch bool
	for _, f := range strings.Fields(rest) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "addr":
			ap, err := netip.ParseAddrPort(v)
			if err != nil {
				return Ready{}, fmt.Errorf("%w: addr: %v", ErrNotReady, err)
			}
			r.Addr, haveAddr = ap, true
		case "arch":
			r.Arch, haveArch = v, v != ""
		}
	}
	if !haveAddr || !haveArch {
		return Ready{}, fmt.Errorf("%w: want addr= and arch= in %q", ErrNotReady, line)
	}
	return r, nil
}

// Launch starts binary with "-addr 127.0.0.1:0", under emulator when it is
// not empty (e.g. "qemu-aarch64-static"), and waits up to timeout (or until
// ctx ends) for its readiness line on stdout. Its stderr goes to stderr
// (nil discards it). On success the caller owns the process and must call
// Stop. On failure Launch has already killed and reaped the process it
// started: ErrStartTimeout when no line came in time, ErrExitedEarly when
// the process ended first, ErrNotReady for a line that does not parse.
func Launch(ctx context.Context, emulator, binary string, timeout time.Duration, stderr io.Writer) (*Edge, error) {
	args := []string{binary, "-addr", "127.0.0.1:0"}
	if emulator != "" {
		args = append([]string{emulator}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", binary, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("launch %s: %w", binary, err)
	}
	e := &Edge{cmd: cmd, done: make(chan struct{})}

	// The reader goroutine ends with the first line or with the pipe's EOF,
	// which comes at the latest when the process is killed below.
	type result struct {
		line string
		err  error
	}
	lines := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		lines <- result{line, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()

	var fail error
	pending := true // the reader goroutine has not sent yet
	select {
	case r := <-lines:
		pending = false
		if r.err != nil {
			fail = fmt.Errorf("launch %s: %w (%v)", binary, ErrExitedEarly, r.err)
		} else if e.Ready, err = ParseReady(r.line); err != nil {
			fail = fmt.Errorf("launch %s: %w", binary, err)
		}
	case <-timer.C:
		fail = fmt.Errorf("launch %s: %w (%v)", binary, ErrStartTimeout, timeout)
	case <-ctx.Done():
		fail = fmt.Errorf("launch %s: %w", binary, ctx.Err())
	}
	if fail != nil {
		cmd.Process.Kill() // our own child, by its PID
		cmd.Wait()         // reaps it and closes the pipe...
		if pending {
			<-lines // ...so the reader ends now
		}
		return nil, fail
	}
	// Wait closes stdout; the single readiness line has been read already.
	go func() {
		e.werr = cmd.Wait()
		close(e.done)
	}()
	return e, nil
}

// Stop sends SIGTERM to the process Launch started (and only to it), waits
// up to grace for it to exit, then kills it. It returns nil when the
// process exited cleanly on SIGTERM, or the reason it did not. Stop must be
// called once.
func (e *Edge) Stop(grace time.Duration) error {
	// An error here means the process has already exited: the select
	// below then returns at once with its exit status.
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-e.done:
		return e.werr
	case <-t.C:
		e.cmd.Process.Kill()
		<-e.done
		return fmt.Errorf("stop pid %d: no exit %v after SIGTERM, killed", e.cmd.Process.Pid, grace)
	}
}
