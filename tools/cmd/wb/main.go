// Command wb is the Floodgate workbook command: where you are, what to do
// next, and whether your lab passes.
//
// Usage:
//
//	go tool wb                   status: chapters, labs, and the next lab
//	go tool wb check LAB         run a lab's tests, one line per task
//	go tool wb hint LAB [TASK]   the next hint, one at a time (--reset starts over)
//	go tool wb watch [LAB]       re-run a lab's tests on every save (--poll to poll)
//	go tool wb solution LAB      the reference solution, once your lab passes
//	go tool wb verify [LAB...]   the maintainers' gate
//
// LAB is a lab's folder, such as ch01-intro/01-ingest, or just 01-ingest
// where that is unique. Progress is nothing but the result of `go test
// -json` on your code: there is no state file.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"floodgate/tools/internal/workbook"
)

const usage = `usage: go tool wb [command]

  status              chapters, labs, your progress and the next lab (the default)
  check LAB           run one lab's tests: one line per task, and the first failure
  hint LAB [TASK]     the next hint for a task (the first failing one by default)
  watch [LAB]         re-run a lab's tests each time you save; Ctrl-C stops
  solution LAB        show the reference solution, once your lab passes
  verify [LAB...]     maintainers: references pass, every task fails on its stub

LAB is a lab's folder, e.g. ch01-intro/01-ingest (or 01-ingest).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	code, err := run(ctx, os.Args[1:], os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wb:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

type app struct {
	root   string
	m      *workbook.Manifest
	runner workbook.Runner
	out    io.Writer
	c      colors
}

func run(ctx context.Context, args []string, out io.Writer) (int, error) {
	cmd := "status"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	if cmd == "help" || cmd == "-h" || cmd == "--help" {
		fmt.Fprint(out, usage)
		return 0, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return 1, err
	}
	root, err := workbook.FindRoot(wd)
	if err != nil {
		return 1, err
	}
	m, err := workbook.LoadManifest(root)
	if err != nil {
		return 1, err
	}
	a := &app{root: root, m: m, runner: workbook.Runner{Root: root}, out: out, c: newColors(out)}
	switch cmd {
	case "status":
		return a.status(ctx)
	case "check":
		if len(args) != 1 {
			return 2, errors.New("usage: go tool wb check LAB")
		}
		return a.check(ctx, args[0])
	case "hint":
		return a.hint(ctx, args)
	case "watch":
		return a.watch(ctx, args)
	case "solution":
		if len(args) != 1 {
			return 2, errors.New("usage: go tool wb solution LAB")
		}
		return a.solution(ctx, args[0])
	case "verify":
		return a.verify(ctx, args)
	default:
		fmt.Fprint(os.Stderr, usage)
		return 2, fmt.Errorf("unknown command %q", cmd)
	}
}

func (a *app) inspect(name string) (*workbook.LabInfo, error) {
	l, err := a.m.Find(name)
	if err != nil {
		return nil, err
	}
	return workbook.Inspect(a.root, l)
}

func (a *app) status(ctx context.Context) (int, error) {
	var infos []*workbook.LabInfo
	for _, l := range a.m.Labs() {
		info, err := workbook.Inspect(a.root, l)
		if err != nil {
			return 1, err
		}
		infos = append(infos, info)
	}
	fmt.Fprintln(os.Stderr, a.c.dim("running your labs' tests (the first run compiles them all; later runs are cached)..."))
	progress, err := workbook.Progress(ctx, a.runner, workbook.StatusOptions, infos)
	if err != nil {
		return 1, err
	}
	byLab := map[*workbook.Lab]workbook.LabProgress{}
	for _, p := range progress {
		byLab[p.Info.Lab] = p
	}
	fmt.Fprintln(a.out, a.c.bold("Floodgate: surviving the IoT data flood"))
	var next *workbook.LabProgress
	done, total := 0, 0
	for _, ch := range a.m.Chapters {
		fmt.Fprintf(a.out, "\n%s  %s\n", a.c.bold(ch.Dir), ch.Title)
		if len(ch.Labs) == 0 {
			fmt.Fprintln(a.out, a.c.dim("  (being written)"))
		}
		for _, l := range ch.Labs {
			p := byLab[l]
			mark, state := a.stateWords(p, 18)
			name := strings.TrimPrefix(l.Path, ch.Dir+"/")
			fmt.Fprintf(a.out, "  %s %-14s %s %s\n", mark, name, state, l.Title)
			if l.Kind == workbook.Exercise {
				total++
				if p.State == workbook.Passed {
					done++
				} else if next == nil {
					pp := p
					next = &pp
				}
			}
		}
	}
	fmt.Fprintf(a.out, "\n%d of %d exercise labs pass. Experiments (~) have no stub: run them as their README says.\n", done, total)
	if next == nil {
		fmt.Fprintln(a.out, "Every lab passes. Next: the capstone (make capstone MINE=1 runs it on your code).")
		return 0, nil
	}
	l := next.Info.Lab
	fmt.Fprintf(a.out, "\n%s %s: %s\n", a.c.bold("Next:"), l.Path, l.Title)
	fmt.Fprintf(a.out, "  read   %s/README.md\n", l.Path)
	for _, s := range next.Info.Stubs {
		fmt.Fprintf(a.out, "  edit   %s/%s\n", l.Path, s)
	}
	fmt.Fprintf(a.out, "  check  go tool wb check %s   (or: go tool wb watch %s)\n", l.Path, l.Path)
	return 0, nil
}

// stateWords returns a lab's mark and state, already padded to width and
// then painted, so that colour codes never upset the columns.
func (a *app) stateWords(p workbook.LabProgress, width int) (mark, words string) {
	pad := func(s string) string { return fmt.Sprintf("%-*s", width, s) }
	switch p.State {
	case workbook.Passed:
		return a.c.green("✓"), a.c.green(pad("passed"))
	case workbook.NotStarted:
		return a.c.dim("·"), a.c.dim(pad("not started"))
	case workbook.Ready:
		return a.c.dim("~"), a.c.dim(pad("experiment"))
	case workbook.Broken:
		return a.c.red("✗"), a.c.red(pad("does not build"))
	}
	if p.Info.Lab.Kind == workbook.Experiment {
		return a.c.red("✗"), a.c.red(pad("failing"))
	}
	return a.c.red("✗"), a.c.red(pad(fmt.Sprintf("%d of %d tasks pass", p.Passed, len(p.Info.Tasks))))
}

// checkLab runs one lab's tests on the reader's code and prints the result.
func (a *app) checkLab(ctx context.Context, info *workbook.LabInfo) (workbook.LabProgress, error) {
	ps, err := workbook.Progress(ctx, a.runner, workbook.CheckOptions, []*workbook.LabInfo{info})
	if err != nil {
		return workbook.LabProgress{}, err
	}
	p := ps[0]
	l := info.Lab
	fmt.Fprintf(a.out, "%s  %s\n", a.c.bold(l.Path), l.Title)
	if p.State == workbook.Broken {
		fmt.Fprintf(a.out, "  %s your code does not build yet:\n", a.c.red("✗"))
		if p.Result != nil {
			fmt.Fprintln(a.out, indent(strings.TrimSpace(p.Result.BuildOutput), "    "))
		}
		return p, nil
	}
	if l.Kind == workbook.Experiment {
		if p.State == workbook.Ready {
			fmt.Fprintf(a.out, "  %s this is an experiment: its checks pass. Run it as its README says and answer its questions.\n", a.c.green("✓"))
		} else {
			fmt.Fprintf(a.out, "  %s this experiment's checks fail:\n%s\n", a.c.red("✗"), indent(workbook.FailureMessage(&workbook.TestResult{Output: p.Result.Output}, 20), "    "))
		}
		return p, nil
	}
	var first *workbook.Task
	for i, t := range info.Tasks {
		tr := p.Result.Tests[t.Test]
		if tr != nil && tr.Status == workbook.Pass {
			fmt.Fprintf(a.out, "  %s Task %d: %s\n", a.c.green("✓"), t.N, t.Title)
			continue
		}
		why := ""
		if tr == nil || tr.Status == workbook.NoResult {
			why = a.c.dim(" (did not finish: another task may have panicked)")
		}
		fmt.Fprintf(a.out, "  %s Task %d: %s%s\n", a.c.red("✗"), t.N, t.Title, why)
		if first == nil {
			first = &info.Tasks[i]
		}
	}
	fmt.Fprintf(a.out, "%d of %d tasks pass.\n", p.Passed, len(info.Tasks))
	if first != nil {
		msg := ""
		if tr := p.Result.Tests[first.Test]; tr != nil {
			msg = workbook.FailureMessage(tr, 20)
		}
		if msg == "" {
			msg = workbook.FailureMessage(&workbook.TestResult{Output: p.Result.Output}, 20)
		}
		fmt.Fprintf(a.out, "\nFirst failure, task %d (%s):\n%s\n", first.N, first.Test, indent(msg, "  "))
		fmt.Fprintf(a.out, "\nStuck? go tool wb hint %s %d\n", l.Path, first.N)
	} else if p.State == workbook.Passed {
		fmt.Fprintf(a.out, "%s Compare with the reference: go tool wb solution %s\n", a.c.green("Lab passed."), l.Path)
	}
	return p, nil
}

func (a *app) check(ctx context.Context, name string) (int, error) {
	info, err := a.inspect(name)
	if err != nil {
		return 2, err
	}
	p, err := a.checkLab(ctx, info)
	if err != nil {
		return 1, err
	}
	if p.State == workbook.Passed || p.State == workbook.Ready {
		return 0, nil
	}
	return 1, nil
}

func (a *app) hint(ctx context.Context, args []string) (int, error) {
	reset := false
	var rest []string
	for _, s := range args {
		if s == "--reset" || s == "-reset" {
			reset = true
		} else {
			rest = append(rest, s)
		}
	}
	if len(rest) < 1 || len(rest) > 2 {
		return 2, errors.New("usage: go tool wb hint LAB [TASK] [--reset]")
	}
	info, err := a.inspect(rest[0])
	if err != nil {
		return 2, err
	}
	if info.Lab.Kind == workbook.Experiment {
		return 1, fmt.Errorf("%s is an experiment: its README is the guide", info.Lab.Path)
	}
	var task int
	if len(rest) == 2 {
		if task, err = strconv.Atoi(strings.TrimPrefix(strings.ToLower(rest[1]), "task")); err != nil {
			return 2, fmt.Errorf("TASK is a task's number, not %q", rest[1])
		}
	} else {
		// The first task that fails on the reader's code.
		ps, err := workbook.Progress(ctx, a.runner, workbook.StatusOptions, []*workbook.LabInfo{info})
		if err != nil {
			return 1, err
		}
		for _, t := range info.Tasks {
			if tr := ps[0].Result.Tests[t.Test]; tr == nil || tr.Status != workbook.Pass {
				task = t.N
				break
			}
		}
		if task == 0 {
			fmt.Fprintf(a.out, "Every task of %s passes. Ask for a task's hints by number: go tool wb hint %s 1\n", info.Lab.Path, info.Lab.Path)
			return 0, nil
		}
	}
	hints := info.Hints[task]
	if len(hints) == 0 {
		return 1, fmt.Errorf("%s has no hints for task %d", info.Lab.Path, task)
	}
	log, err := workbook.DefaultHintLog()
	if err != nil {
		return 1, err
	}
	key := fmt.Sprintf("%s#%d", info.Lab.Path, task)
	if reset {
		return 0, log.Set(key, 0)
	}
	seen, err := log.Seen(key)
	if err != nil {
		return 1, err
	}
	if seen >= len(hints) {
		seen = len(hints) - 1 // the last hint again
	}
	h := hints[seen]
	fmt.Fprintf(a.out, "%s  task %d, hint %d of %d: %s\n\n%s\n", a.c.bold(info.Lab.Path), task, seen+1, len(hints), h.Title, h.Body)
	if seen+1 < len(hints) {
		fmt.Fprintf(a.out, "\n%s\n", a.c.dim("Run the same command again for the next hint."))
	} else {
		fmt.Fprintf(a.out, "\n%s\n", a.c.dim(fmt.Sprintf("That was the last hint. Start over with: go tool wb hint %s %d --reset", info.Lab.Path, task)))
	}
	return 0, log.Set(key, seen+1)
}

func (a *app) solution(ctx context.Context, name string) (int, error) {
	info, err := a.inspect(name)
	if err != nil {
		return 2, err
	}
	if info.Lab.Kind == workbook.Experiment {
		return 1, fmt.Errorf("%s is an experiment: it has no solution to show", info.Lab.Path)
	}
	p, err := a.checkLab(ctx, info)
	if err != nil {
		return 1, err
	}
	if p.State != workbook.Passed {
		fmt.Fprintf(a.out, "\nThe reference stays closed until your lab passes: that is the point of the exercise.\n")
		return 1, nil
	}
	for _, s := range info.Solutions {
		src, err := os.ReadFile(info.Dir + string(os.PathSeparator) + s)
		if err != nil {
			return 1, err
		}
		fmt.Fprintf(a.out, "\n%s\n\n%s", a.c.bold("── "+info.Lab.Path+"/"+s+" ──"), src)
	}
	return 0, nil
}

func (a *app) verify(ctx context.Context, names []string) (int, error) {
	var labs []*workbook.Lab
	for _, n := range names {
		l, err := a.m.Find(n)
		if err != nil {
			return 2, err
		}
		labs = append(labs, l)
	}
	v := workbook.Verifier{Runner: a.runner, Out: a.out}
	res, err := v.Verify(ctx, a.m, labs)
	if err != nil {
		return 1, err
	}
	fmt.Fprintln(a.out, res.Summary())
	if !res.OK() {
		return 1, nil
	}
	return 0, nil
}

func indent(s, prefix string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}
