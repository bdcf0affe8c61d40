package workbook

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseManifest(t *testing.T) {
	m, err := ParseManifest(strings.NewReader(`# comment
chapter ch01-a  First chapter
lab ch01-a/01-x exercise The X lab
lab ch01-a/02-y experiment The Y experiment

chapter ch02-b  Second
`))
	require.NoError(t, err)
	require.Len(t, m.Chapters, 2)
	assert.Equal(t, "First chapter", m.Chapters[0].Title)
	require.Len(t, m.Labs(), 2)
	assert.Equal(t, Experiment, m.Labs()[1].Kind)

	l, err := m.Find("./ch01-a/01-x/")
	require.NoError(t, err)
	assert.Equal(t, "ch01-a/01-x", l.Path)
	l, err = m.Find("02-y")
	require.NoError(t, err)
	assert.Equal(t, "The Y experiment", l.Title)
	_, err = m.Find("03-z")
	assert.ErrorIs(t, err, ErrNoLab)

	for _, bad := range []string{
		"lab ch01-a/01-x exercise X\n",                                // chapter not declared
		"chapter c T\nlab c/01-x homework X\n",                        // unknown kind
		"chapter c T\nchapter c T\n",                                  // declared twice
		"chapter c T\nlab c/01-x exercise X\nlab c/01-x exercise X\n", // lab twice
		"section c T\n",                                               // unknown directive
	} {
		_, err := ParseManifest(strings.NewReader(bad))
		assert.ErrorIs(t, err, ErrManifest, "%q", bad)
	}
}

func TestParseTestJSON(t *testing.T) {
	out := `{"Action":"start","Package":"floodgate/a"}
{"Action":"run","Package":"floodgate/a","Test":"TestTask1_X"}
{"Action":"output","Package":"floodgate/a","Test":"TestTask1_X","Output":"    a_test.go:9: want 2, got 1\n"}
{"Action":"run","Package":"floodgate/a","Test":"TestTask1_X/sub"}
{"Action":"fail","Package":"floodgate/a","Test":"TestTask1_X/sub"}
{"Action":"fail","Package":"floodgate/a","Test":"TestTask1_X"}
{"Action":"pass","Package":"floodgate/a","Test":"TestTask2_Y"}
not json at all
{"Action":"fail","Package":"floodgate/a"}
{"ImportPath":"floodgate/b [floodgate/b.test]","Action":"build-output","Output":"b/b.go:3:1: syntax error\n"}
{"ImportPath":"floodgate/b [floodgate/b.test]","Action":"build-fail"}
{"Action":"output","Package":"floodgate/b","Output":"FAIL\tfloodgate/b [build failed]\n"}
{"Action":"fail","Package":"floodgate/b","FailedBuild":"floodgate/b [floodgate/b.test]"}
`
	res := ParseTestJSON([]byte(out))
	a := res["floodgate/a"]
	require.NotNil(t, a)
	assert.Equal(t, Fail, a.Status)
	assert.False(t, a.BuildFailed)
	assert.Equal(t, Fail, a.Tests["TestTask1_X"].Status)
	assert.Equal(t, Pass, a.Tests["TestTask2_Y"].Status)
	assert.Contains(t, FailureMessage(a.Tests["TestTask1_X"], 5), "want 2, got 1")
	b := res["floodgate/b"]
	require.NotNil(t, b)
	assert.True(t, b.BuildFailed)
	assert.Contains(t, b.BuildOutput, "syntax error")
}

func TestParseHints(t *testing.T) {
	h := parseHints([]byte("# Hints\n\n## Task 1\n\n### First\nlook here\n\n### Second\nand here\n\n## Task 2: words\n### Only\none\n"))
	require.Len(t, h[1], 2)
	assert.Equal(t, "First", h[1][0].Title)
	assert.Equal(t, "look here", h[1][0].Body)
	require.Len(t, h[2], 1)
}

func TestExtractSnippets(t *testing.T) {
	md := "text\n```go\nx := 1\n_ = x\n```\n\n```go partial\nfunc f() { ... }\n```\n\n```text\nnot go\n```\n\n```go\npackage main\n\nfunc main() {}\n```\n"
	s := ExtractSnippets("README.md", []byte(md))
	require.Len(t, s, 2, "the partial block and the text block are left out")
	assert.Equal(t, 2, s[0].Line)
	assert.Equal(t, "x := 1\n_ = x\n", s[0].Src)
	assert.Contains(t, s[1].Src, "package main")
}

// A small workspace with one lab, written into a temporary folder, that the
// tests below break in different ways.
const (
	goodStub = `//go:build !floodgate.solution

package good

// Double returns 2*x.
func Double(x int) int {
	// TODO: return twice x.
	return 0
}

// Half returns x/2.
func Half(x int) int {
	// TODO: return half of x.
	return 0
}
`
	goodSolution = `//go:build floodgate.solution

package good

// Double returns 2*x.
func Double(x int) int { return 2 * x }

// Half returns x/2.
func Half(x int) int { return x / 2 }
`
	goodTest = `package good

import "testing"

func TestTask1_Double(t *testing.T) {
	if got := Double(21); got != 42 {
		t.Fatalf("Double(21) = %d, want 42", got)
	}
}

func TestTask2_Half(t *testing.T) {
	if got := Half(42); got != 21 {
		t.Fatalf("Half(42) = %d, want 21", got)
	}
}
`
	goodReadme = "# 01 · Good\n\n1. **Task 1: Double it.** `TestTask1_Double`.\n2. **Task 2: Halve it.** `TestTask2_Half`.\n\n```go\nfmt.Println(good.Double(2))\n```\n\n```go partial\nfunc Double(x int) int { ... }\n```\n"
	goodHints  = "# Hints\n\n## Task 1\n### One\nMultiply.\n### Two\nBy two.\n\n## Task 2\n### One\nDivide.\n### Two\nBy two.\n"
)

func writeWorkspace(t *testing.T, overrides map[string]string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"go.work":                         "go 1.25\n\nuse ./ch01-a\n",
		"tools/manifest.txt":              "chapter ch01-a First\nlab ch01-a/01-good exercise A good lab\n",
		"ch01-a/go.mod":                   "module floodgate/ch01-a\n\ngo 1.25\n",
		"ch01-a/01-good/doc.go":           "// Package good is a lab for wb's tests.\npackage good\n",
		"ch01-a/01-good/good.go":          goodStub,
		"ch01-a/01-good/good_solution.go": goodSolution,
		"ch01-a/01-good/good_test.go":     goodTest,
		"ch01-a/01-good/README.md":        goodReadme,
		"ch01-a/01-good/HINTS.md":         goodHints,
	}
	for k, v := range overrides {
		files[k] = v
	}
	for name, content := range files {
		if content == "" {
			continue // an override of "" removes the file
		}
		p := filepath.Join(root, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	return root
}

func verify(t *testing.T, root string) (*VerifyResult, string) {
	t.Helper()
	m, err := LoadManifest(root)
	require.NoError(t, err)
	var out bytes.Buffer
	v := Verifier{Runner: Runner{Root: root, Env: []string{"GOWORK=", "GOTOOLCHAIN=local", "GOFLAGS="}}, Out: &out}
	res, err := v.Verify(context.Background(), m, nil)
	require.NoError(t, err, out.String())
	return res, out.String()
}

func TestVerifyAcceptsAGoodLab(t *testing.T) {
	res, out := verify(t, writeWorkspace(t, nil))
	assert.True(t, res.OK(), "problems: %v\n%s", res.Problems, out)
	assert.Equal(t, "verify: 1 labs, 2 tasks: 2 fail on stub, 2 pass on solution", res.Summary())
}

func TestVerifyRejectsATaskThatPassesOnTheStub(t *testing.T) {
	leaky := strings.Replace(goodStub, "// TODO: return half of x.\n\treturn 0", "// TODO: return half of x.\n\treturn x / 2", 1)
	res, out := verify(t, writeWorkspace(t, map[string]string{"ch01-a/01-good/good.go": leaky}))
	assert.False(t, res.OK())
	assert.Equal(t, 1, res.FailOnStub, out)
	assert.Contains(t, strings.Join(res.Problems, "\n"), "TestTask2_Half PASSES on the stub")
	assert.Contains(t, res.Summary(), "1 problem(s)")
}

func TestVerifyDoesNotCountABuildErrorAsAFailure(t *testing.T) {
	broken := strings.Replace(goodStub, "return 0\n}\n\n// Half", "return undefined\n}\n\n// Half", 1)
	res, out := verify(t, writeWorkspace(t, map[string]string{"ch01-a/01-good/good.go": broken}))
	assert.False(t, res.OK())
	assert.Equal(t, 0, res.FailOnStub, out)
	assert.Contains(t, strings.Join(res.Problems, "\n"), "the stub does not build")
}

func TestVerifyRejectsAFailingReference(t *testing.T) {
	wrong := strings.Replace(goodSolution, "return x / 2", "return x / 3", 1)
	res, _ := verify(t, writeWorkspace(t, map[string]string{"ch01-a/01-good/good_solution.go": wrong}))
	assert.False(t, res.OK())
	assert.Equal(t, 1, res.PassOnSolution)
	assert.Contains(t, strings.Join(res.Problems, "\n"), "TestTask2_Half does not pass on the reference")
}

func TestVerifyChecksTheConvention(t *testing.T) {
	res, _ := verify(t, writeWorkspace(t, map[string]string{
		"ch01-a/01-good/HINTS.md":  "## Task 1\n### Only one\nx\n",
		"ch01-a/01-good/README.md": strings.Replace(goodReadme, "2. **Task 2: Halve it.** `TestTask2_Half`.", "", 1),
		"ch01-a/02-orphan/doc.go":  "package orphan\n",
		"ch01-a/go.mod":            "module floodgate/ch01-a\n\ngo 1.25.0\n",
		"go.work":                  "go 1.25.0\n\nuse ./ch01-a\n",
	}))
	all := strings.Join(res.Problems, "\n")
	for _, want := range []string{
		"HINTS.md has 1 hint(s) for task 1",
		"HINTS.md has 0 hint(s) for task 2",
		"README.md has no **Task 2: ...** item",
		"ch01-a/02-orphan is not in tools/manifest.txt",
		"ch01-a/go.mod must say `go 1.25`",
		"go.work must say `go 1.25`",
	} {
		assert.Contains(t, all, want)
	}
}

func TestVerifyCompilesTheLessonsGoBlocks(t *testing.T) {
	readme := goodReadme + "\n```go\nfmt.Println(good.Triple(2))\n```\n"
	res, _ := verify(t, writeWorkspace(t, map[string]string{"ch01-a/01-good/README.md": readme}))
	require.Len(t, res.Problems, 1, "only the block that calls a missing function fails; the partial one is skipped")
	assert.Contains(t, res.Problems[0], "go block does not compile")
	assert.Contains(t, res.Problems[0], "Triple")
}

func TestTagRole(t *testing.T) {
	for tag, want := range map[string]fileRole{
		"":                                          shared,
		"!floodgate.solution":                       stub,
		"floodgate.solution":                        solution,
		runtime.GOOS + " && !floodgate.solution":    stub,
		runtime.GOOS + " && floodgate.solution":     solution,
		"plan9 && !floodgate.solution":              shared, // not built here at all
		runtime.GOOS:                                shared,
		"floodgate.solution || !floodgate.solution": shared,
	} {
		got, err := tagRole(tag)
		require.NoError(t, err, tag)
		assert.Equal(t, want, got, "%q", tag)
	}
	_, err := tagRole("&& broken")
	assert.Error(t, err)
}

// A lab that imports an earlier lab must fail on its own stub, not on the
// earlier lab's: verify tests it against the earlier lab's reference, so a
// stub that leans on the earlier lab to pass is caught.
func TestVerifyTestsALabAgainstEarlierReferences(t *testing.T) {
	res, out := verify(t, writeWorkspace(t, map[string]string{
		"tools/manifest.txt":              "chapter ch01-a First\nlab ch01-a/01-good exercise A good lab\nlab ch01-a/02-next exercise Builds on it\n",
		"ch01-a/02-next/doc.go":           "// Package next builds on good.\npackage next\n",
		"ch01-a/02-next/next.go":          "//go:build !floodgate.solution\n\npackage next\n\nimport good \"floodgate/ch01-a/01-good\"\n\n// Quadruple returns 4*x.\nfunc Quadruple(x int) int {\n\t// TODO: already done, by mistake.\n\treturn good.Double(good.Double(x))\n}\n",
		"ch01-a/02-next/next_solution.go": "//go:build floodgate.solution\n\npackage next\n\nimport good \"floodgate/ch01-a/01-good\"\n\n// Quadruple returns 4*x.\nfunc Quadruple(x int) int { return good.Double(good.Double(x)) }\n",
		"ch01-a/02-next/next_test.go":     "package next\n\nimport \"testing\"\n\nfunc TestTask1_Quadruple(t *testing.T) {\n\tif Quadruple(2) != 8 {\n\t\tt.Fatal(\"want 8\")\n\t}\n}\n",
		"ch01-a/02-next/README.md":        "# 02\n\n1. **Task 1: Quadruple.** `TestTask1_Quadruple`.\n",
		"ch01-a/02-next/HINTS.md":         "## Task 1\n### a\nx\n### b\ny\n",
	}))
	assert.Contains(t, strings.Join(res.Problems, "\n"), "TestTask1_Quadruple PASSES on the stub", out)
	assert.Equal(t, 2, res.FailOnStub, "01-good's two tasks still fail on its own stub")
}
