package workbook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Status is a test's or a package's outcome in `go test -json`.
type Status string

const (
	Pass     Status = "pass"
	Fail     Status = "fail"
	Skip     Status = "skip"
	NoResult Status = "" // never reported: the binary crashed, or the test did not run
)

// TestResult is one top-level test's outcome. Output holds its own lines and
// those of its subtests, in order.
type TestResult struct {
	Name   string
	Status Status
	Output string
}

// PkgResult is one package's outcome.
type PkgResult struct {
	ImportPath  string
	Status      Status
	BuildFailed bool
	BuildOutput string
	Output      string // package-level lines (panics, "FAIL", timeouts)
	Tests       map[string]*TestResult
}

// Runner runs the go command in a workspace.
type Runner struct {
	Root string   // the folder to run in
	Go   string   // the go command; "go" when empty
	Env  []string // extra environment, appended to os.Environ()
}

// TestOptions select the build and the tests of one `go test` run.
type TestOptions struct {
	Solution bool          // build with -tags floodgate.solution
	Race     bool          // -race
	Run      string        // -run pattern; all tests when empty
	Timeout  time.Duration // -timeout; go test's default when zero
	NoCache  bool          // -count=1
	Overlay  string        // -overlay file (see `go help build`)
}

func (o TestOptions) args() []string {
	args := []string{"test", "-json"}
	if o.Race {
		args = append(args, "-race")
	}
	if o.Solution {
		args = append(args, "-tags", SolutionTag)
	}
	if o.Run != "" {
		args = append(args, "-run", o.Run)
	}
	if o.Timeout > 0 {
		args = append(args, "-timeout", o.Timeout.String())
	}
	if o.NoCache {
		args = append(args, "-count=1")
	}
	if o.Overlay != "" {
		args = append(args, "-overlay", o.Overlay)
	}
	return args
}

// Command returns the go command line that Test runs, for messages.
func (o TestOptions) Command(pkgs ...string) string {
	return "go " + strings.Join(append(o.args(), pkgs...), " ")
}

func (r Runner) command(ctx context.Context, args ...string) *exec.Cmd {
	g := r.Go
	if g == "" {
		g = "go"
	}
	cmd := exec.CommandContext(ctx, g, args...)
	cmd.Dir = r.Root
	cmd.Env = append(os.Environ(), r.Env...)
	return cmd
}

// Test runs `go test -json` on pkgs and returns the results by import path.
// A failing test is not an error; an error means the go command could not
// report at all.
func (r Runner) Test(ctx context.Context, opts TestOptions, pkgs ...string) (map[string]*PkgResult, error) {
	cmd := r.command(ctx, append(opts.args(), pkgs...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	res := ParseTestJSON(stdout.Bytes())
	if len(res) == 0 {
		if runErr == nil {
			runErr = errors.New("no output")
		}
		return nil, fmt.Errorf("%s: %w\n%s", opts.Command(pkgs...), runErr, strings.TrimSpace(stderr.String()))
	}
	// Older go commands print build errors on stderr, not as JSON.
	for _, p := range res {
		if p.BuildFailed && p.BuildOutput == "" {
			p.BuildOutput = stderr.String()
		}
	}
	return res, nil
}

type testEvent struct {
	Action      string
	Package     string
	Test        string
	Output      string
	ImportPath  string
	FailedBuild string
}

// ParseTestJSON reads the output of `go test -json`. Lines that are not
// JSON events are ignored.
func ParseTestJSON(out []byte) map[string]*PkgResult {
	res := map[string]*PkgResult{}
	buildOut := map[string]*strings.Builder{}
	pkg := func(path string) *PkgResult {
		p := res[path]
		if p == nil {
			p = &PkgResult{ImportPath: path, Tests: map[string]*TestResult{}}
			res[path] = p
		}
		return p
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<16), 16<<20)
	for sc.Scan() {
		var ev testEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		switch {
		case ev.Action == "build-output":
			b := buildOut[ev.ImportPath]
			if b == nil {
				b = &strings.Builder{}
				buildOut[ev.ImportPath] = b
			}
			b.WriteString(ev.Output)
			continue
		case ev.Package == "":
			continue
		}
		p := pkg(ev.Package)
		if ev.Test == "" {
			switch ev.Action {
			case "output":
				p.Output += ev.Output
			case "pass", "fail", "skip":
				p.Status = Status(ev.Action)
				if ev.FailedBuild != "" {
					p.BuildFailed = true
					if b := buildOut[ev.FailedBuild]; b != nil {
						p.BuildOutput = b.String()
					}
				}
			}
			continue
		}
		top, _, _ := strings.Cut(ev.Test, "/")
		t := p.Tests[top]
		if t == nil {
			t = &TestResult{Name: top}
			p.Tests[top] = t
		}
		switch ev.Action {
		case "output":
			t.Output += ev.Output
		case "pass", "fail", "skip":
			if ev.Test == top {
				t.Status = Status(ev.Action)
			}
		}
	}
	for _, p := range res {
		if strings.Contains(p.Output, "[build failed]") || strings.Contains(p.Output, "[setup failed]") {
			p.BuildFailed = true
		}
	}
	return res
}

// FailureMessage picks the lines of a failed test worth showing a reader:
// the test's own messages without go test's bookkeeping, at most max lines.
func FailureMessage(t *TestResult, max int) string {
	var lines []string
	for _, l := range strings.Split(t.Output, "\n") {
		s := strings.TrimSpace(l)
		if s == "" || strings.HasPrefix(s, "=== ") || strings.HasPrefix(s, "--- ") {
			continue
		}
		lines = append(lines, strings.TrimRight(l, " "))
		if len(lines) == max {
			lines = append(lines, "    ...")
			break
		}
	}
	return strings.Join(lines, "\n")
}
