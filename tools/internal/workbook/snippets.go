package workbook

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/tools/imports"
)

// Snippet is a ```go block of a lesson.
type Snippet struct {
	Doc  string // the Markdown file, relative to the root
	Line int    // line of the opening fence
	Src  string
}

// ExtractSnippets returns the ```go blocks of a Markdown file, leaving out
// those marked ```go partial.
func ExtractSnippets(doc string, md []byte) []Snippet {
	var out []Snippet
	var cur *Snippet
	var fence string
	sc := bufio.NewScanner(bytes.NewReader(md))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		trim := strings.TrimSpace(line)
		if fence == "" {
			if strings.HasPrefix(trim, "```") || strings.HasPrefix(trim, "~~~") {
				fence = trim[:3]
				info := strings.Fields(strings.TrimLeft(trim, "`~"))
				if len(info) > 0 && info[0] == "go" && !containsWord(info[1:], "partial") {
					cur = &Snippet{Doc: doc, Line: n}
				}
			}
			continue
		}
		if strings.HasPrefix(trim, fence) && strings.Trim(trim, "`~") == "" {
			if cur != nil {
				out = append(out, *cur)
			}
			cur, fence = nil, ""
			continue
		}
		if cur != nil {
			cur.Src += line + "\n"
		}
	}
	return out
}

func containsWord(ws []string, w string) bool {
	for _, x := range ws {
		if x == w {
			return true
		}
	}
	return false
}

var pkgClauseRE = regexp.MustCompile(`(?m)^package \w+`)

// snippetFile turns a snippet into a Go file: a whole file stays as it is; a
// run of declarations gets a package clause; anything else becomes the body
// of a function. Missing imports are added, and the package the lesson is
// about (importPath, whose name is pkgName) is imported when it is used.
func snippetFile(s Snippet, pkgName, importPath string) ([]byte, error) {
	src := s.Src
	if !pkgClauseRE.MatchString(src) {
		asDecls := "package snippet\n\n" + src
		if _, err := parser.ParseFile(token.NewFileSet(), "", asDecls, parser.SkipObjectResolution); err == nil {
			src = asDecls
		} else {
			src = "package snippet\n\nfunc _() {\n" + src + "\n}\n"
		}
	}
	if pkgName != "" && strings.Contains(src, pkgName+".") && !strings.Contains(src, `"`+importPath+`"`) {
		src = pkgClauseRE.ReplaceAllStringFunc(src, func(clause string) string {
			return clause + "\n\nimport " + pkgName + " " + strconvQuote(importPath) + "\n"
		})
	}
	out, err := imports.Process("snippet.go", []byte(src), &imports.Options{Comments: true, TabIndent: true, TabWidth: 8, FormatOnly: false})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func strconvQuote(s string) string { return `"` + s + `"` }

// DocPackage names the package a lesson is about: the Go package in the
// Markdown file's folder, if any.
type DocPackage struct {
	Name, ImportPath string
}

// CheckSnippets compiles every snippet, each as its own package inside the
// module of the Markdown file it comes from, with the solution tag. It
// returns one problem per snippet that does not compile.
func CheckSnippets(ctx context.Context, r Runner, snippets []Snippet, pkgs map[string]DocPackage) ([]string, error) {
	if len(snippets) == 0 {
		return nil, nil
	}
	var problems []string
	var dirs []string
	owner := map[string]Snippet{} // relative snippet dir -> snippet
	var cleanup []string
	defer func() {
		for _, d := range cleanup {
			os.RemoveAll(d)
		}
	}()
	scratch := map[string]string{} // module dir -> scratch dir
	for i, s := range snippets {
		docDir := filepath.Join(r.Root, filepath.Dir(filepath.FromSlash(s.Doc)))
		modDir, _, err := findModule(docDir)
		if err != nil {
			return nil, err
		}
		base := scratch[modDir]
		if base == "" {
			if err := os.MkdirAll(filepath.Join(modDir, ".wb-snippets"), 0o755); err != nil {
				return nil, err
			}
			base, err = os.MkdirTemp(filepath.Join(modDir, ".wb-snippets"), "run")
			if err != nil {
				return nil, err
			}
			scratch[modDir] = base
			cleanup = append(cleanup, base)
		}
		dp := pkgs[filepath.Dir(s.Doc)]
		src, err := snippetFile(s, dp.Name, dp.ImportPath)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s:%d: go block does not parse: %v (mark it ```go partial if it is deliberately incomplete)", s.Doc, s.Line, err))
			continue
		}
		dir := filepath.Join(base, fmt.Sprintf("s%03d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "snippet.go"), src, 0o644); err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(r.Root, dir)
		rel = filepath.ToSlash(rel)
		dirs = append(dirs, "./"+rel)
		owner[rel] = s
	}
	if len(dirs) == 0 {
		return problems, nil
	}
	// With several packages, go build only checks that they compile; with
	// one, it would write a binary, so send that to the null device.
	args := []string{"build", "-tags", SolutionTag}
	if len(dirs) == 1 {
		args = append(args, "-o", os.DevNull)
	}
	cmd := r.command(ctx, append(args, dirs...)...)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return problems, nil
	}
	reported := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		for rel, s := range owner {
			if strings.Contains(line, rel+"/") && !reported[rel] {
				reported[rel] = true
				msg := line[strings.Index(line, rel+"/")+len(rel)+1:]
				problems = append(problems, fmt.Sprintf("%s:%d: go block does not compile: %s (mark it ```go partial if it is deliberately incomplete)", s.Doc, s.Line, msg))
			}
		}
	}
	if len(reported) == 0 {
		problems = append(problems, fmt.Sprintf("lesson snippets do not build: %s", strings.TrimSpace(string(out))))
	}
	return problems, nil
}
