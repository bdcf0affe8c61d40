//go:build linux && floodgate.solution

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// openPTY returns a pseudo-terminal's two ends: what the terminal shows
// is read from master; slave is the program's standard input.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	rc, err := m.SyscallConn()
	require.NoError(t, err)
	var n int
	require.NoError(t, rc.Control(func(fd uintptr) {
		if err = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); err == nil {
			n, err = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	}))
	require.NoError(t, err)
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return m, s
}

// -scram-hash typed at a terminal: the password does not show (the
// terminal's echo is off while it is read, and on again after).
func TestRun_SCRAMHashNoEcho(t *testing.T) {
	master, slave := openPTY(t)
	before, err := termios(slave)
	require.NoError(t, err)
	require.NotZero(t, before.Lflag&unix.ECHO, "a terminal echoes by default")

	oldIn, oldHook := stdin, echoOff
	t.Cleanup(func() { stdin, echoOff = oldIn, oldHook })
	var prompt bytes.Buffer
	stdin = noEcho(slave, &prompt)
	off := make(chan struct{})
	echoOff = func() { close(off) }
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- printSCRAMLine("alice", 0, &out) }()
	select {
	case <-off:
	case err := <-done:
		t.Fatalf("returned before the echo was off: %v", err)
	case <-time.After(10 * time.Second):
		// The reader is blocked on the terminal: unblock it to end.
		_, _ = master.Write([]byte("x\n"))
		<-done
		t.Fatal("the echo never went off")
	}
	_, err = master.Write([]byte("wonderland\n"))
	require.NoError(t, err)
	require.NoError(t, <-done)
	assert.True(t, strings.HasPrefix(out.String(), "alice:SCRAM-SHA-256$4096:"), out.String())
	assert.Contains(t, prompt.String(), "password")

	after, err := termios(slave)
	require.NoError(t, err)
	assert.Equal(t, before.Lflag, after.Lflag, "the echo is back on")
	// Whatever the terminal showed comes out of master in order: type a
	// marker, now echoed, and read up to it.
	_, err = master.Write([]byte("#"))
	require.NoError(t, err)
	require.NoError(t, master.SetReadDeadline(time.Now().Add(10*time.Second)))
	var shown []byte
	buf := make([]byte, 256)
	for !bytes.Contains(shown, []byte("#")) {
		n, err := master.Read(buf)
		shown = append(shown, buf[:n]...)
		require.NoError(t, err, "shown so far: %q", shown)
	}
	assert.NotContains(t, string(shown), "wonderland", "the password showed on the terminal")
}

// noEchoHelperEnv makes TestNoEchoHelper act as `floodgate -scram-hash`.
const noEchoHelperEnv = "FLOODGATE_NOECHO_HELPER"

// TestNoEchoHelper is not a test on its own: TestRun_SCRAMHashInterrupted
// runs the test binary again with noEchoHelperEnv set and a
// pseudo-terminal as standard input, and this reads a password from it.
func TestNoEchoHelper(t *testing.T) {
	if os.Getenv(noEchoHelperEnv) == "" {
		t.Skip("run by TestRun_SCRAMHashInterrupted")
	}
	stdin = noEcho(os.Stdin, os.Stderr)
	_ = printSCRAMLine("alice", 0, os.Stdout)
}

// A Ctrl-C at the password prompt ends the program as it always did, but
// leaves the terminal echoing again.
func TestRun_SCRAMHashInterrupted(t *testing.T) {
	_, slave := openPTY(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	helper := exec.Command(exe, "-test.run=^TestNoEchoHelper$", "-test.count=1")
	helper.Env = append(os.Environ(), noEchoHelperEnv+"=1")
	helper.Stdin = slave
	stderr, err := helper.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, helper.Start())
	waited := false
	t.Cleanup(func() {
		if !waited {
			_ = helper.Process.Kill()
			_ = helper.Wait()
		}
	})

	// The prompt comes once the echo is off.
	require.NoError(t, stderr.(*os.File).SetReadDeadline(time.Now().Add(30*time.Second)))
	r := bufio.NewReader(stderr)
	var seen []byte
	for !bytes.Contains(seen, []byte("password")) {
		b, err := r.ReadByte()
		require.NoError(t, err, "no prompt; stderr so far: %q", seen)
		seen = append(seen, b)
	}
	mid, err := termios(slave)
	require.NoError(t, err)
	require.Zero(t, mid.Lflag&unix.ECHO, "the echo is off at the prompt")

	require.NoError(t, helper.Process.Signal(os.Interrupt))
	err = helper.Wait()
	waited = true
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "the helper ended with %v", err)
	assert.Equal(t, syscall.SIGINT, ee.Sys().(syscall.WaitStatus).Signal(), "it dies of the signal")
	after, err := termios(slave)
	require.NoError(t, err)
	assert.NotZero(t, after.Lflag&unix.ECHO, "the terminal echoes again")
}
