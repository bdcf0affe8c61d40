package workbook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// StubTimeout bounds a stub's test run: a stub that hangs is a broken lab.
const StubTimeout = 3 * time.Minute

// VerifyResult is what Verify found.
type VerifyResult struct {
	Labs, Tasks    int
	FailOnStub     int // tasks whose test fails on the stub
	PassOnSolution int // tasks whose test passes on the solution
	Problems       []string
}

// OK reports whether nothing was wrong.
func (v *VerifyResult) OK() bool { return len(v.Problems) == 0 }

// Summary is the closing line of `wb verify`.
func (v *VerifyResult) Summary() string {
	s := fmt.Sprintf("verify: %d labs, %d tasks: %d fail on stub, %d pass on solution", v.Labs, v.Tasks, v.FailOnStub, v.PassOnSolution)
	if n := len(v.Problems); n > 0 {
		s += fmt.Sprintf("; %d problem(s)", n)
	}
	return s
}

// Verifier is the maintainers' gate.
type Verifier struct {
	Runner Runner
	Out    io.Writer // progress and per-lab lines
}

// Verify checks the labs (all of the manifest's when labs is empty): the
// workspace's shape, each lab's files, that each reference passes under
// -race, that each task's test fails on the stub (a build error is not a
// failure), and that the lessons' Go blocks compile.
func (v Verifier) Verify(ctx context.Context, m *Manifest, labs []*Lab) (*VerifyResult, error) {
	root := v.Runner.Root
	res := &VerifyResult{}
	whole := len(labs) == 0
	if whole {
		labs = m.Labs()
		for _, p := range checkWorkspace(root, m) {
			fmt.Fprintf(v.Out, "FAIL %s\n", p)
			res.Problems = append(res.Problems, p)
		}
	}
	res.Labs = len(labs)

	infos := make([]*LabInfo, 0, len(labs))
	byImport := map[string]*LabInfo{}
	var allPkgs, stubPkgs []string
	labProblems := map[*LabInfo][]string{}
	for _, l := range labs {
		info, err := Inspect(root, l)
		if err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("%s: %v", l.Path, err))
			continue
		}
		infos = append(infos, info)
		byImport[info.ImportPath] = info
		labProblems[info] = append(labProblems[info], info.Problems...)
		allPkgs = append(allPkgs, info.ImportPath)
		if l.Kind == Exercise {
			stubPkgs = append(stubPkgs, info.ImportPath)
		}
		res.Tasks += len(info.Tasks)
	}

	fmt.Fprintf(v.Out, "verify: testing %d reference solutions and experiments under -race...\n", len(allPkgs))
	solOpts := TestOptions{Solution: true, Race: true}
	var sol map[string]*PkgResult
	if len(allPkgs) > 0 {
		var err error
		if sol, err = v.Runner.Test(ctx, solOpts, allPkgs...); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(v.Out, "verify: testing %d stubs...\n", len(stubPkgs))
	stubOpts := TestOptions{Timeout: StubTimeout}
	var stub map[string]*PkgResult
	overlays := map[string]string{} // import path -> overlay used for its stub run
	if len(stubPkgs) > 0 {
		var err error
		if stub, err = v.Runner.Test(ctx, stubOpts, stubPkgs...); err != nil {
			return nil, err
		}
		// A lab that builds on earlier labs (a broker on the codec and the
		// trie) must fail because of its own stub, not because theirs are
		// empty: test it again with every other lab's stub swapped for that
		// lab's reference.
		dependent, err := dependentLabs(ctx, v.Runner, m, infos)
		if err != nil {
			return nil, err
		}
		if len(dependent) > 0 {
			dir, err := os.MkdirTemp("", "wb-overlay")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(dir)
			for _, info := range dependent {
				others, err := otherLabs(root, m, info)
				if err != nil {
					return nil, err
				}
				ov, err := writeOverlay(dir, info, others)
				if err != nil {
					return nil, err
				}
				overlays[info.ImportPath] = ov
				opts := stubOpts
				opts.Overlay = ov
				r, err := v.Runner.Test(ctx, opts, info.ImportPath)
				if err != nil {
					return nil, err
				}
				stub[info.ImportPath] = r[info.ImportPath]
			}
		}
	}

	for _, info := range infos {
		p := sol[info.ImportPath]
		add := func(format string, a ...any) {
			labProblems[info] = append(labProblems[info], fmt.Sprintf(format, a...))
		}
		switch {
		case p == nil:
			add("the reference was not tested: %s", solOpts.Command(info.ImportPath))
		case p.BuildFailed:
			add("the reference does not build:\n%s", indent(p.BuildOutput))
		case p.Status != Pass:
			add("the reference fails under -race: run `%s`%s", solOpts.Command(info.ImportPath), firstFailure(p))
		}
		for _, t := range info.Tasks {
			if p == nil || p.BuildFailed {
				break
			}
			if tr := p.Tests[t.Test]; tr != nil && tr.Status == Pass {
				res.PassOnSolution++
			} else {
				add("task %d: %s does not pass on the reference (%s)", t.N, t.Test, statusWord(tr))
			}
		}
		if info.Lab.Kind != Exercise {
			continue
		}
		s := stub[info.ImportPath]
		switch {
		case s == nil:
			add("the stub was not tested")
			continue
		case s.BuildFailed:
			add("the stub does not build, so no task can fail honestly:\n%s", indent(s.BuildOutput))
			continue
		}
		for _, t := range info.Tasks {
			tr := s.Tests[t.Test]
			if tr == nil || tr.Status == NoResult {
				// Another task's panic or a timeout killed the binary before
				// this test reported; give it a run of its own.
				one, err := v.Runner.Test(ctx, TestOptions{Timeout: StubTimeout, Run: "^" + t.Test + "$", Overlay: overlays[info.ImportPath]}, info.ImportPath)
				if err != nil {
					return nil, err
				}
				if p := one[info.ImportPath]; p != nil {
					tr = p.Tests[t.Test]
				}
			}
			switch {
			case tr != nil && tr.Status == Fail:
				res.FailOnStub++
			case tr != nil && tr.Status == Pass:
				add("task %d: %s PASSES on the stub: the exercise is done before the reader starts", t.N, t.Test)
			default:
				add("task %d: %s does not fail cleanly on the stub (%s): a stub must return, not panic or hang", t.N, t.Test, statusWord(tr))
			}
		}
	}

	// The lessons' Go blocks compile.
	docs := lessonDocs(root, infos, whole)
	var snippets []Snippet
	pkgs := map[string]DocPackage{}
	for _, info := range infos {
		rel, _ := filepath.Rel(root, info.Dir)
		pkgs[filepath.ToSlash(rel)] = DocPackage{Name: packageName(info.Dir), ImportPath: info.ImportPath}
	}
	for _, d := range docs {
		src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(d)))
		if err != nil {
			continue
		}
		snippets = append(snippets, ExtractSnippets(d, src)...)
	}
	fmt.Fprintf(v.Out, "verify: compiling %d Go blocks from %d lessons...\n", len(snippets), len(docs))
	snipProblems, err := CheckSnippets(ctx, v.Runner, snippets, pkgs)
	if err != nil {
		return nil, err
	}

	for _, info := range infos {
		ps := labProblems[info]
		tasks := fmt.Sprintf("%d tasks", len(info.Tasks))
		if info.Lab.Kind == Experiment {
			tasks = "experiment"
		}
		mark := "ok  "
		if len(ps) > 0 {
			mark = "FAIL"
		}
		fmt.Fprintf(v.Out, "%s %-40s %s\n", mark, info.Lab.Path, tasks)
		for _, p := range ps {
			fmt.Fprintf(v.Out, "     - %s\n", p)
			res.Problems = append(res.Problems, info.Lab.Path+": "+p)
		}
	}
	for _, p := range snipProblems {
		fmt.Fprintf(v.Out, "FAIL %s\n", p)
	}
	res.Problems = append(res.Problems, snipProblems...)
	return res, nil
}

// lessonDocs lists the Markdown files whose Go blocks must compile: each
// lab's README, and, for a whole run, the chapters' and the capstone's.
func lessonDocs(root string, infos []*LabInfo, whole bool) []string {
	var docs []string
	for _, info := range infos {
		rel, _ := filepath.Rel(root, filepath.Join(info.Dir, "README.md"))
		docs = append(docs, filepath.ToSlash(rel))
	}
	if whole {
		for _, d := range []string{"ch01-intro", "ch02-concurrency", "ch03-networking", "ch04-tuning", "ch05-edge", "capstone"} {
			if fileExists(filepath.Join(root, d, "README.md")) {
				docs = append(docs, d+"/README.md")
			}
		}
	}
	sort.Strings(docs)
	return docs
}

var goLineRE = regexp.MustCompile(`(?m)^go\s+(\S+)\s*$`)
var labDirRE = regexp.MustCompile(`^[0-9][0-9]-[a-z0-9-]+$`)

// checkWorkspace checks what issue 2 asks of the workspace: every module is
// floodgate/..., says `go 1.25`, and every lab folder is in the manifest.
func checkWorkspace(root string, m *Manifest) []string {
	var problems []string
	work, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		return []string{fmt.Sprintf("go.work: %v", err)}
	}
	if g := goLineRE.FindSubmatch(work); g == nil || string(g[1]) != "1.25" {
		problems = append(problems, "go.work must say `go 1.25` (a dependency that needs a newer Go bumps it: pick an older version)")
	}
	for _, line := range strings.Split(string(work), "\n") {
		f := strings.Fields(strings.Trim(line, "()\t "))
		if len(f) == 0 || !strings.HasPrefix(f[len(f)-1], "./") {
			continue
		}
		dir := f[len(f)-1]
		mod, err := os.ReadFile(filepath.Join(root, dir, "go.mod"))
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", dir, err))
			continue
		}
		if g := goLineRE.FindSubmatch(mod); g == nil || string(g[1]) != "1.25" {
			problems = append(problems, fmt.Sprintf("%s/go.mod must say `go 1.25`, not a patch version: pick dependency versions that need at most Go 1.25, then `go mod edit -go=1.25`", strings.TrimPrefix(dir, "./")))
		}
		if _, path, err := findModule(filepath.Join(root, dir)); err == nil && !strings.HasPrefix(path, "floodgate/") {
			problems = append(problems, fmt.Sprintf("%s: module path %s does not start with floodgate/", dir, path))
		}
	}
	known := map[string]bool{}
	for _, l := range m.Labs() {
		known[l.Path] = true
	}
	for _, c := range m.Chapters {
		entries, err := os.ReadDir(filepath.Join(root, c.Dir))
		if err != nil {
			problems = append(problems, fmt.Sprintf("chapter %s: %v", c.Dir, err))
			continue
		}
		for _, e := range entries {
			if e.IsDir() && labDirRE.MatchString(e.Name()) && !known[c.Dir+"/"+e.Name()] {
				problems = append(problems, fmt.Sprintf("%s/%s is not in %s", c.Dir, e.Name(), ManifestPath))
			}
		}
	}
	return problems
}

// packageName reads the package clause of doc.go (or any .go file) in dir.
func packageName(dir string) string {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		src, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if m := pkgClauseRE.Find(src); m != nil {
			return strings.TrimPrefix(string(m), "package ")
		}
	}
	return ""
}

func firstFailure(p *PkgResult) string {
	names := make([]string, 0, len(p.Tests))
	for n := range p.Tests {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if t := p.Tests[n]; t.Status == Fail {
			return fmt.Sprintf("\n       %s failed:\n%s", n, indent(FailureMessage(t, 12)))
		}
	}
	if out := strings.TrimSpace(p.Output); out != "" {
		return "\n" + indent(lastLines(out, 12))
	}
	return ""
}

func statusWord(t *TestResult) string {
	if t == nil || t.Status == NoResult {
		return "no result"
	}
	return string(t.Status)
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "       " + l
	}
	return strings.Join(lines, "\n")
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// dependentLabs returns the exercise labs among infos that import another
// lab's package, directly or through their dependencies or tests.
func dependentLabs(ctx context.Context, r Runner, m *Manifest, infos []*LabInfo) ([]*LabInfo, error) {
	labPkgs := map[string]bool{}
	var pkgs []string
	for _, l := range m.Labs() {
		if l.Kind != Exercise {
			continue
		}
		info, err := Inspect(r.Root, l)
		if err != nil {
			return nil, err
		}
		labPkgs[info.ImportPath] = true
	}
	byPath := map[string]*LabInfo{}
	for _, info := range infos {
		if info.Lab.Kind == Exercise {
			pkgs = append(pkgs, info.ImportPath)
			byPath[info.ImportPath] = info
		}
	}
	if len(pkgs) == 0 {
		return nil, nil
	}
	cmd := r.command(ctx, append([]string{"list", "-e", "-f", `{{.ImportPath}}|{{join .Deps ","}},{{join .TestImports ","}},{{join .XTestImports ","}}`}, pkgs...)...)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w", err)
	}
	var dependent []*LabInfo
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, deps, _ := strings.Cut(line, "|")
		for _, d := range strings.Split(deps, ",") {
			if d != path && labPkgs[d] && byPath[path] != nil {
				dependent = append(dependent, byPath[path])
				break
			}
		}
	}
	return dependent, nil
}

// otherLabs inspects every exercise lab of the manifest but info's own.
func otherLabs(root string, m *Manifest, info *LabInfo) ([]*LabInfo, error) {
	var out []*LabInfo
	for _, l := range m.Labs() {
		if l.Kind != Exercise || l.Path == info.Lab.Path {
			continue
		}
		o, err := Inspect(root, l)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// writeOverlay writes a `go build -overlay` file in which each of others'
// stubs is replaced by its reference (with the build line flipped, so it is
// built without the tag) and each reference file is removed.
func writeOverlay(dir string, info *LabInfo, others []*LabInfo) (string, error) {
	replace := map[string]string{}
	for _, o := range others {
		for _, s := range o.Stubs {
			sol := strings.TrimSuffix(s, ".go") + "_solution.go"
			src, err := os.ReadFile(filepath.Join(o.Dir, sol))
			if err != nil {
				return "", err
			}
			lines := strings.SplitN(string(src), "\n", 2)
			for i, l := range lines {
				if strings.HasPrefix(l, "//go:build ") {
					l = strings.ReplaceAll(l, SolutionTag, "!"+SolutionTag)
					lines[i] = strings.ReplaceAll(l, "!!", "")
					break
				}
			}
			f, err := os.CreateTemp(dir, "*.go")
			if err != nil {
				return "", err
			}
			_, err = f.WriteString(strings.Join(lines, "\n"))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return "", err
			}
			replace[filepath.Join(o.Dir, s)] = f.Name()
			replace[filepath.Join(o.Dir, sol)] = ""
		}
	}
	b, err := json.Marshal(map[string]any{"Replace": replace})
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, strings.ReplaceAll(info.Lab.Path, "/", "_")+".json")
	return p, os.WriteFile(p, b, 0o644)
}
