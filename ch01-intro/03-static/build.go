package static

import (
	"bufio"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Variant is one way to build the server.
type Variant struct {
	Name    string
	Env     []string // added to the environment of `go build`
	Flags   []string // flags of `go build`
	Comment string
}

// Variants are the builds the experiment compares.
var Variants = []Variant{
	{Name: "default", Comment: "go build, as it comes"},
	{Name: "nocgo", Env: []string{"CGO_ENABLED=0"}, Comment: "no cgo: the net package uses Go's own resolver"},
	{Name: "nocgo-stripped", Env: []string{"CGO_ENABLED=0"}, Flags: []string{"-trimpath", "-ldflags=-s -w"}, Comment: "no cgo, no symbol table or DWARF"},
}

// Package is the command the experiment builds.
const Package = "floodgate/ch01-intro/03-static/cmd/ingestd"

// Build builds Package with v into dir and returns the binary's path. The
// reference solution of lab 01 is used, so the binary works whatever the
// state of the reader's own lab.
func Build(ctx context.Context, v Variant, dir string) (string, error) {
	out := filepath.Join(dir, "ingestd-"+v.Name)
	args := append([]string{"build", "-tags", "floodgate.solution", "-o", out}, v.Flags...)
	cmd := exec.CommandContext(ctx, "go", append(args, Package)...)
	cmd.Env = append(os.Environ(), v.Env...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", v.Name, err, msg)
	}
	return out, nil
}

// Linkage describes a binary: whether it asks for a dynamic loader, the
// shared libraries it names, and whether it carries a symbol table.
type Linkage struct {
	Interpreter string // PT_INTERP, e.g. /lib64/ld-linux-x86-64.so.2; empty when static
	Libraries   []string
	Symbols     bool
}

// Static reports whether the binary runs with no dynamic loader.
func (l Linkage) Static() bool { return l.Interpreter == "" && len(l.Libraries) == 0 }

// Inspect reads a binary's ELF headers.
func Inspect(path string) (Linkage, error) {
	f, err := elf.Open(path)
	if err != nil {
		return Linkage{}, fmt.Errorf("inspect %s: %w", path, err)
	}
	defer f.Close()
	var l Linkage
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return Linkage{}, fmt.Errorf("inspect %s: %w", path, err)
			}
			l.Interpreter = strings.TrimRight(string(b), "\x00")
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil {
		l.Libraries = libs
	}
	l.Symbols = f.Section(".symtab") != nil
	return l, nil
}

// Process is a started server.
type Process struct {
	Addr  string        // where it listens
	Ready time.Duration // from exec to its "listening on" line
	cmd   *exec.Cmd
	out   *bufio.Reader
}

// ErrNotReady is returned when the server exits or stays silent.
var ErrNotReady = errors.New("server did not report that it is listening")

// Start runs the binary on a free loopback port and waits, at most until
// ctx ends, for its "listening on ADDR" line.
func Start(ctx context.Context, bin string) (*Process, error) {
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &Process{cmd: cmd, out: bufio.NewReader(stdout)}
	line := make(chan string, 1)
	go func() {
		s, _ := p.out.ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		addr, ok := strings.CutPrefix(strings.TrimSpace(s), "listening on ")
		if !ok {
			p.Kill()
			return nil, fmt.Errorf("%w: it printed %q", ErrNotReady, s)
		}
		p.Addr, p.Ready = addr, time.Since(begin)
		return p, nil
	case <-ctx.Done():
		p.Kill()
		<-line
		return nil, fmt.Errorf("%w: %w", ErrNotReady, ctx.Err())
	}
}

// Stop sends SIGTERM, waits for the process to exit, and returns what it
// printed on the way out and its exit error.
func (p *Process) Stop() (string, error) {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return "", err
	}
	rest, _ := io.ReadAll(p.out)
	return string(rest), p.cmd.Wait()
}

// Kill ends the process at once, by its PID, and reaps it.
func (p *Process) Kill() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}
