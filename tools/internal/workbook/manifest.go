// Package workbook is the engine behind the `wb` command: it reads the
// manifest, inspects lab folders, runs `go test -json` and judges the result.
//
// Nothing here keeps state between runs except the count of hints shown
// (see HintLog). A reader's progress is the result of their tests.
package workbook

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ManifestPath is where the manifest lives, relative to the workspace root.
const ManifestPath = "tools/manifest.txt"

// Kind says whether a lab has a stub for the reader to fill in.
type Kind string

const (
	// Exercise labs have a stub, a reference solution and one test per task.
	Exercise Kind = "exercise"
	// Experiment labs have no stub: the reader runs them and reads the figures.
	Experiment Kind = "experiment"
)

// Chapter is one chapter of the workbook, with its labs in reading order.
type Chapter struct {
	Dir   string // e.g. "ch01-intro"
	Title string
	Labs  []*Lab
}

// Lab is one lab: one folder, one package, one concept.
type Lab struct {
	Path    string // slash-separated, relative to the root: "ch01-intro/01-ingest"
	Kind    Kind
	Title   string
	Chapter *Chapter
	Line    int // line of the manifest that declares it
}

// Manifest lists the chapters and labs in order.
type Manifest struct {
	Chapters []*Chapter
}

// ErrManifest is wrapped by every error about the manifest's syntax.
var ErrManifest = errors.New("manifest")

// ParseManifest reads a manifest. Blank lines and lines starting with # are
// ignored; every other line is `chapter DIR TITLE` or
// `lab CHAPTER/NN-NAME KIND TITLE`, and a lab belongs to the chapter its
// path starts with, which must be declared before it.
func ParseManifest(r io.Reader) (*Manifest, error) {
	m := &Manifest{}
	chapters := map[string]*Chapter{}
	labs := map[string]bool{}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%w: line %d: %s", ErrManifest, n, fmt.Sprintf(format, a...))
		}
		switch f[0] {
		case "chapter":
			if len(f) < 3 {
				return nil, bad("want `chapter DIR TITLE`")
			}
			if chapters[f[1]] != nil {
				return nil, bad("chapter %s declared twice", f[1])
			}
			c := &Chapter{Dir: f[1], Title: strings.Join(f[2:], " ")}
			chapters[c.Dir] = c
			m.Chapters = append(m.Chapters, c)
		case "lab":
			if len(f) < 4 {
				return nil, bad("want `lab CHAPTER/NN-NAME KIND TITLE`")
			}
			p := strings.TrimSuffix(f[1], "/")
			dir, _, ok := strings.Cut(p, "/")
			c := chapters[dir]
			if !ok || c == nil {
				return nil, bad("lab %s: its chapter is not declared above it", p)
			}
			k := Kind(f[2])
			if k != Exercise && k != Experiment {
				return nil, bad("lab %s: kind %q is neither exercise nor experiment", p, f[2])
			}
			if labs[p] {
				return nil, bad("lab %s declared twice", p)
			}
			labs[p] = true
			c.Labs = append(c.Labs, &Lab{Path: p, Kind: k, Title: strings.Join(f[3:], " "), Chapter: c, Line: n})
		default:
			return nil, bad("unknown directive %q", f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	return m, nil
}

// Labs returns every lab in reading order.
func (m *Manifest) Labs() []*Lab {
	var out []*Lab
	for _, c := range m.Chapters {
		out = append(out, c.Labs...)
	}
	return out
}

// ErrNoLab is returned by Find when no lab matches.
var ErrNoLab = errors.New("no such lab")

// Find resolves what a reader typed: a lab's path ("ch01-intro/01-ingest",
// with or without "./" and a trailing slash), or a folder name that only one
// lab has ("01-ingest" when it is unique).
func (m *Manifest) Find(name string) (*Lab, error) {
	p := strings.TrimSuffix(strings.TrimPrefix(filepath.ToSlash(name), "./"), "/")
	var partial []*Lab
	for _, l := range m.Labs() {
		if l.Path == p {
			return l, nil
		}
		if strings.HasSuffix(l.Path, "/"+p) {
			partial = append(partial, l)
		}
	}
	if len(partial) == 1 {
		return partial[0], nil
	}
	if len(partial) > 1 {
		return nil, fmt.Errorf("%w: %q matches %s and %s; give the chapter too", ErrNoLab, name, partial[0].Path, partial[1].Path)
	}
	return nil, fmt.Errorf("%w: %q (run `go tool wb` for the list)", ErrNoLab, name)
}

// FindRoot walks up from dir to the workspace root: the folder holding both
// go.work and the manifest.
func FindRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if fileExists(filepath.Join(d, "go.work")) && fileExists(filepath.Join(d, ManifestPath)) {
			return d, nil
		}
		up := filepath.Dir(d)
		if up == d {
			return "", fmt.Errorf("not inside the Floodgate workspace: no go.work with %s above %s", ManifestPath, dir)
		}
		d = up
	}
}

// LoadManifest reads the manifest of the workspace at root.
func LoadManifest(root string) (*Manifest, error) {
	f, err := os.Open(filepath.Join(root, ManifestPath))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseManifest(f)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
