package workbook

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/build/constraint"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

// SolutionTag is the build tag that selects reference solutions.
const SolutionTag = "floodgate.solution"

// Task is one numbered task of an exercise lab.
type Task struct {
	N     int
	Test  string // the top-level test that checks it, e.g. TestTask1_ParseLine
	Title string // from the lesson's "**Task N: ...**", else from the test's name
}

// Hint is one hint of a task, in the order the reader should see them.
type Hint struct {
	Title string
	Body  string
}

// LabInfo is what Inspect found in a lab's folder.
type LabInfo struct {
	Lab        *Lab
	Dir        string // absolute
	Module     string // module path, e.g. floodgate/ch01-intro
	ModuleDir  string // absolute
	ImportPath string // e.g. floodgate/ch01-intro/01-ingest
	Stubs      []string
	Solutions  []string
	Tasks      []Task
	Hints      map[int][]Hint // by task number
	// Problems are breaches of the lab convention; wb verify reports them.
	Problems []string
}

var (
	taskTestRE   = regexp.MustCompile(`^TestTask([0-9]+)_[A-Za-z0-9_]+$`)
	readmeTaskRE = regexp.MustCompile(`\*\*Task ([0-9]+):\s*([^*]+?)\s*\*\*`)
	hintTaskRE   = regexp.MustCompile(`^##\s+Task\s+([0-9]+)\b`)
)

// Inspect reads a lab's folder and checks it against the lab convention.
// It returns an error only when the folder cannot be read at all.
func Inspect(root string, lab *Lab) (*LabInfo, error) {
	info := &LabInfo{Lab: lab, Dir: filepath.Join(root, filepath.FromSlash(lab.Path)), Hints: map[int][]Hint{}}
	entries, err := os.ReadDir(info.Dir)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", lab.Path, err)
	}
	problem := func(format string, a ...any) { info.Problems = append(info.Problems, fmt.Sprintf(format, a...)) }

	info.ModuleDir, info.Module, err = findModule(info.Dir)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", lab.Path, err)
	}
	rel, _ := filepath.Rel(info.ModuleDir, info.Dir)
	info.ImportPath = info.Module + "/" + filepath.ToSlash(rel)

	for _, want := range []string{"doc.go", "README.md"} {
		if !fileExists(filepath.Join(info.Dir, want)) {
			problem("no %s", want)
		}
	}

	fset := token.NewFileSet()
	tests := map[int][]string{}
	var testFiles int
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") {
			continue
		}
		path := filepath.Join(info.Dir, name)
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %w", lab.Path, err)
		}
		tag := buildTag(src)
		role, err := tagRole(tag)
		if err != nil {
			problem("%s: %v", name, err)
			continue
		}
		switch {
		case strings.HasSuffix(name, "_test.go"):
			testFiles++
			f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
			if err != nil {
				problem("%s does not parse: %v", name, err)
				continue
			}
			for _, d := range f.Decls {
				fn, ok := d.(*ast.FuncDecl)
				if !ok || fn.Recv != nil {
					continue
				}
				if m := taskTestRE.FindStringSubmatch(fn.Name.Name); m != nil {
					n, _ := strconv.Atoi(m[1])
					tests[n] = append(tests[n], fn.Name.Name)
					if role != shared {
						problem("%s holds %s but is built for one side only (%s): task tests must be shared by stub and solution", name, fn.Name.Name, tag)
					}
				}
			}
		case role == stub:
			info.Stubs = append(info.Stubs, name)
			if !bytes.Contains(src, []byte("TODO")) {
				problem("stub %s has no TODO marking where the reader works", name)
			}
		case role == solution:
			info.Solutions = append(info.Solutions, name)
		}
	}
	if testFiles == 0 {
		problem("no _test.go file")
	}

	switch lab.Kind {
	case Experiment:
		if len(info.Stubs) > 0 || len(info.Solutions) > 0 {
			problem("an experiment has no stub or solution, but found %s", strings.Join(append(info.Stubs, info.Solutions...), ", "))
		}
		if len(tests) > 0 {
			problem("an experiment has no tasks, but found TestTask tests; make it an exercise in %s", ManifestPath)
		}
		return info, nil
	case Exercise:
	}

	if len(info.Stubs) == 0 {
		problem("no stub: a file starting with //go:build !%s", SolutionTag)
	}
	if len(info.Solutions) == 0 {
		problem("no reference: a file starting with //go:build %s", SolutionTag)
	}
	for _, s := range info.Stubs {
		want := strings.TrimSuffix(s, ".go") + "_solution.go"
		if !contains(info.Solutions, want) {
			problem("stub %s has no matching %s", s, want)
		}
	}
	if len(tests) == 0 {
		problem("no TestTaskN_ tests")
	}
	var nums []int
	for n := range tests {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	for i, n := range nums {
		if n != i+1 {
			problem("tasks are numbered %v: they must run 1, 2, 3, ... with no gap", nums)
			break
		}
	}
	for _, n := range nums {
		if len(tests[n]) > 1 {
			problem("task %d has several tests (%s): keep one TestTask%d_ and use subtests", n, strings.Join(tests[n], ", "), n)
		}
		info.Tasks = append(info.Tasks, Task{N: n, Test: tests[n][0], Title: words(tests[n][0])})
	}

	// The lesson names each task and its test.
	readme, err := os.ReadFile(filepath.Join(info.Dir, "README.md"))
	if err == nil {
		titles := map[int]string{}
		for _, m := range readmeTaskRE.FindAllStringSubmatch(string(readme), -1) {
			n, _ := strconv.Atoi(m[1])
			if _, dup := titles[n]; !dup {
				titles[n] = strings.TrimRight(m[2], ".:")
			}
		}
		for i := range info.Tasks {
			t := &info.Tasks[i]
			if title, ok := titles[t.N]; ok {
				t.Title = title
			} else {
				problem("README.md has no **Task %d: ...** item", t.N)
			}
			if !bytes.Contains(readme, []byte(t.Test)) {
				problem("README.md does not name task %d's test %s", t.N, t.Test)
			}
		}
		for n := range titles {
			if _, ok := tests[n]; !ok {
				problem("README.md describes Task %d, but no TestTask%d_ checks it", n, n)
			}
		}
	}

	hints, err := os.ReadFile(filepath.Join(info.Dir, "HINTS.md"))
	if err != nil {
		problem("no HINTS.md")
	} else {
		info.Hints = parseHints(hints)
		for _, t := range info.Tasks {
			if len(info.Hints[t.N]) < 2 {
				problem("HINTS.md has %d hint(s) for task %d: give at least two (### headings under ## Task %d)", len(info.Hints[t.N]), t.N, t.N)
			}
		}
	}
	return info, nil
}

// parseHints splits HINTS.md into `## Task N` sections and, within each,
// `### ...` hints.
func parseHints(src []byte) map[int][]Hint {
	out := map[int][]Hint{}
	task := 0
	var cur *Hint
	flush := func() {
		if cur != nil && task > 0 {
			cur.Body = strings.TrimSpace(cur.Body)
			out[task] = append(out[task], *cur)
		}
		cur = nil
	}
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			flush()
			task = 0
			if m := hintTaskRE.FindStringSubmatch(line); m != nil {
				task, _ = strconv.Atoi(m[1])
			}
		case strings.HasPrefix(line, "### "):
			flush()
			cur = &Hint{Title: strings.TrimSpace(line[4:])}
		case cur != nil:
			cur.Body += line + "\n"
		}
	}
	flush()
	return out
}

type fileRole int

const (
	shared   fileRole = iota // built for both, or for neither
	stub                     // built only without the solution tag
	solution                 // built only with it
)

// tagRole says which side of the lab a file's //go:build line puts it on,
// on this platform: `!floodgate.solution` (or `linux && !floodgate.solution`
// for a lab that needs Linux) is the stub, `floodgate.solution` the reference.
func tagRole(tag string) (fileRole, error) {
	if tag == "" {
		return shared, nil
	}
	expr, err := constraint.Parse("//go:build " + tag)
	if err != nil {
		return shared, fmt.Errorf("bad //go:build line: %w", err)
	}
	platform := func(t string) bool {
		return t == runtime.GOOS || t == runtime.GOARCH || t == "gc" || strings.HasPrefix(t, "go1.") ||
			(t == "unix" && runtime.GOOS != "windows" && runtime.GOOS != "plan9" && runtime.GOOS != "js" && runtime.GOOS != "wasip1")
	}
	with := expr.Eval(func(t string) bool { return t == SolutionTag || platform(t) })
	without := expr.Eval(func(t string) bool { return t != SolutionTag && platform(t) })
	switch {
	case without && !with:
		return stub, nil
	case with && !without:
		return solution, nil
	}
	return shared, nil
}

// buildTag returns the expression of a file's //go:build line, or "".
func buildTag(src []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "//go:build ") {
			return strings.TrimSpace(strings.TrimPrefix(line, "//go:build "))
		}
		if strings.HasPrefix(line, "package ") {
			return ""
		}
	}
	return ""
}

// findModule walks up from dir to the nearest go.mod.
func findModule(dir string) (moduleDir, modulePath string, err error) {
	for d := dir; ; d = filepath.Dir(d) {
		src, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			for _, line := range strings.Split(string(src), "\n") {
				if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
					return d, strings.Trim(f[1], `"`), nil
				}
			}
			return "", "", fmt.Errorf("%s/go.mod has no module line", d)
		}
		if filepath.Dir(d) == d {
			return "", "", fmt.Errorf("no go.mod above %s", dir)
		}
	}
}

// words turns TestTask2_DrainOnShutdown into "drain on shutdown".
func words(test string) string {
	_, name, _ := strings.Cut(test, "_")
	name = strings.ReplaceAll(name, "_", " ")
	var b strings.Builder
	for i, r := range name {
		if i > 0 && r >= 'A' && r <= 'Z' && name[i-1] != ' ' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return strings.ToLower(b.String())
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
