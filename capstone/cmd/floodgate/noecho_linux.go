//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// A password typed for -scram-hash must not show on the screen, nor in a
// terminal's scrollback or a session log (script(1)): when standard input
// is a terminal, its echo is off while printSCRAMLine reads it. A password
// piped in is read as it comes.
func init() { stdin = noEcho(os.Stdin, os.Stderr) }

// echoOff, if set, is called once the echo is off, before the read
// (tests).
var echoOff func()

// noEcho returns f itself, or for a terminal a reader whose every Read
// turns the echo off first and back on after; it prompts on and ends the
// line on tell (the Enter key is not echoed either).
func noEcho(f *os.File, tell io.Writer) io.Reader {
	if _, err := termios(f); err != nil {
		return f
	}
	return &quietTTY{f: f, tell: tell}
}

type quietTTY struct {
	f    *os.File
	tell io.Writer
}

// termios returns f's terminal attributes (an error: f is no terminal).
func termios(f *os.File) (*unix.Termios, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var t *unix.Termios
	if cerr := rc.Control(func(fd uintptr) { t, err = unix.IoctlGetTermios(int(fd), unix.TCGETS) }); cerr != nil {
		return nil, cerr
	}
	return t, err
}

func setTermios(f *os.File, t *unix.Termios) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	if cerr := rc.Control(func(fd uintptr) { err = unix.IoctlSetTermios(int(fd), unix.TCSETS, t) }); cerr != nil {
		return cerr
	}
	return err
}

func (q *quietTTY) Read(b []byte) (int, error) {
	old, err := termios(q.f)
	if err != nil {
		return 0, fmt.Errorf("read the terminal's settings: %w", err)
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO | unix.ECHONL
	if err := setTermios(q.f, &quiet); err != nil {
		return 0, fmt.Errorf("turn the terminal's echo off: %w", err)
	}
	defer func() {
		_ = setTermios(q.f, old)
		_, _ = fmt.Fprintln(q.tell)
	}()
	// A Ctrl-C (or a SIGTERM, SIGHUP) while the echo is off would leave
	// the terminal silent: restore it, then die of the signal as before.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case sig := <-sigs:
			_ = setTermios(q.f, old)
			signal.Reset(sig)
			_ = syscall.Kill(os.Getpid(), sig.(syscall.Signal))
		case <-done:
		}
	}()
	defer func() {
		signal.Stop(sigs)
		close(done)
		wg.Wait()
	}()
	_, _ = fmt.Fprint(q.tell, "password (not shown): ")
	if echoOff != nil {
		echoOff()
	}
	return q.f.Read(b)
}
