//go:build !floodgate.solution

package cross

import (
	"context"
	"io"
	"time"
)

// BuildEnv returns the environment variables, as "KEY=value" strings, that
// make `go build` produce a static binary for t: CGO_ENABLED=0, GOOS,
// GOARCH, and GOARM or GOMIPS only when t sets them. Append the result to
// os.Environ(): later entries win.
func BuildEnv(t Target) []string {
	// TODO(Task 1): CGO_ENABLED=0, GOOS and GOARCH always; GOARM and
	// GOMIPS only when the target sets them.
	return nil
}

// ParseReady parses a readiness line, "edged ready addr=IP:PORT
// arch=GOOS/GOARCH" (a trailing "\n" or "\r\n" is allowed). Any other line,
// a missing field or an address without a port returns an error wrapping
// ErrNotReady.
func ParseReady(line string) (Ready, error) {
	// TODO(Task 2): cut ReadyPrefix, then read the addr= and arch= fields;
	// netip.ParseAddrPort checks the address.
	return Ready{}, ErrNotImplemented
}

// Launch starts binary with "-addr 127.0.0.1:0", under emulator when it is
// not empty (e.g. "qemu-aarch64-static"), and waits up to timeout (or until
// ctx ends) for its readiness line on stdout. Its stderr goes to stderr
// (nil discards it). On success the caller owns the process and must call
// Stop. On failure Launch has already killed and reaped the process it
// started: ErrStartTimeout when no line came in time, ErrExitedEarly when
// the process ended first, ErrNotReady for a line that does not parse.
func Launch(ctx context.Context, emulator, binary string, timeout time.Duration, stderr io.Writer) (*Edge, error) {
	// TODO(Task 3): exec.Command, StdoutPipe, Start; read the first line in
	// a goroutine and select on it, a timer and ctx. On failure kill the
	// child you started and Wait for it before returning.
	return nil, ErrNotImplemented
}

// Stop sends SIGTERM to the process Launch started (and only to it), waits
// up to grace for it to exit, then kills it. It returns nil when the
// process exited cleanly on SIGTERM, or the reason it did not. Stop must be
// called once.
func (e *Edge) Stop(grace time.Duration) error {
	// TODO(Task 3): signal, then wait for e.done or the grace period.
	return ErrNotImplemented
}
