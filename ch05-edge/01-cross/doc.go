// Package cross builds one edge ingestion binary for four gateway CPUs and
// runs each build under qemu-user, with a real TCP round trip on loopback.
//
// A Go binary built with CGO_ENABLED=0 links no C library, so the same
// source becomes a static executable for linux/arm64, linux/arm (ARMv7),
// linux/mipsle (soft float) and linux/riscv64 with nothing but environment
// variables. Target names one build of the matrix; BuildEnv turns it into
// the environment for `go build`. The binary, cmd/edged, serves the line
// protocol of Server and announces its address on stdout with a readiness
// line ("edged ready addr=127.0.0.1:PORT arch=linux/arm64"), so a
// supervisor can ask for port 0 and still find it: ParseReady reads that
// line and Launch starts the binary (under an emulator or natively), waits
// for it and returns an Edge that Stop ends.
package cross

import (
	"errors"
	"net/netip"
	"os/exec"
)

// Target is one entry of the build matrix: the values of GOOS, GOARCH and,
// where the architecture has one, its variant variable.
type Target struct {
	GOOS   string // always "linux" here
	GOARCH string // arm64, arm, mipsle, riscv64
	GOARM  string // "7" for ARMv7; empty for every other GOARCH
	GOMIPS string // "softfloat" for gateways without an FPU; empty for non-MIPS
}

// String returns "GOOS/GOARCH", with the variant after a slash when set,
// e.g. "linux/arm/7" or "linux/mipsle/softfloat".
func (t Target) String() string {
	s := t.GOOS + "/" + t.GOARCH
	switch {
	case t.GOARM != "":
		s += "/" + t.GOARM
	case t.GOMIPS != "":
		s += "/" + t.GOMIPS
	}
	return s
}

// Matrix is the chapter's build matrix: the four gateway targets, in the
// order the lesson's table lists them.
var Matrix = []Target{
	{GOOS: "linux", GOARCH: "arm64"},
	{GOOS: "linux", GOARCH: "arm", GOARM: "7"},
	{GOOS: "linux", GOARCH: "mipsle", GOMIPS: "softfloat"},
	{GOOS: "linux", GOARCH: "riscv64"},
}

// Emulator returns the qemu-user program (from Debian's qemu-user-static)
// that runs t's binaries on another CPU.
func Emulator(t Target) string {
	switch t.GOARCH {
	case "arm64":
		return "qemu-aarch64-static"
	case "arm":
		return "qemu-arm-static"
	case "mipsle":
		return "qemu-mipsel-static"
	case "riscv64":
		return "qemu-riscv64-static"
	}
	return ""
}

// ReadyPrefix starts the one line that edged writes to stdout once it is
// listening: "edged ready addr=IP:PORT arch=GOOS/GOARCH".
const ReadyPrefix = "edged ready "

// Ready is the content of a readiness line.
type Ready struct {
	Addr netip.AddrPort // where the binary listens
	Arch string         // runtime GOOS/GOARCH the binary reports, e.g. "linux/arm64"
}

// Edge is a running edged process that Launch started. Stop ends it.
type Edge struct {
	Ready
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd.Wait has returned
	werr error         // cmd.Wait's result; read only after done is closed
}

// Errors returned by ParseReady and Launch.
var (
	ErrNotReady       = errors.New("cross: not a readiness line")
	ErrStartTimeout   = errors.New("cross: no readiness line before the deadline")
	ErrExitedEarly    = errors.New("cross: process exited before it was ready")
	ErrNotImplemented = errors.New("cross: not implemented")
)

// PID returns the id of the process that Launch started.
func (e *Edge) PID() int { return e.cmd.Process.Pid }
