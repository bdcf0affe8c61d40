//go:build linux && floodgate.solution

package main

import (
	"bytes"
	"fmt"
	"os"
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
