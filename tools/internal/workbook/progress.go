package workbook

import (
	"context"
	"os/exec"
	"path/filepath"
)

// State is where a reader stands on a lab.
type State string

const (
	Passed     State = "passed"
	Failing    State = "failing"
	NotStarted State = "not started"
	Broken     State = "does not build"
	Ready      State = "experiment" // an experiment whose tests pass: ready to run
)

// LabProgress is a lab's state, from its tests on the reader's code.
type LabProgress struct {
	Info   *LabInfo
	State  State
	Passed int // tasks passing
	Result *PkgResult
}

// CheckOptions are the test options for the reader's own code: -race, since
// a lab on concurrency that passes only without the race detector does not
// pass.
var CheckOptions = TestOptions{Race: true, Timeout: StubTimeout}

// StatusOptions are lighter: status tests every lab at once, so it leaves
// out -race; `wb check` is the word that counts.
var StatusOptions = TestOptions{Timeout: StubTimeout}

// Progress tests the given labs on the reader's code in one go test run and
// says where the reader stands on each.
func Progress(ctx context.Context, r Runner, opts TestOptions, infos []*LabInfo) ([]LabProgress, error) {
	var pkgs []string
	for _, info := range infos {
		pkgs = append(pkgs, info.ImportPath)
	}
	res, err := r.Test(ctx, opts, pkgs...)
	if err != nil {
		return nil, err
	}
	out := make([]LabProgress, 0, len(infos))
	for _, info := range infos {
		p := LabProgress{Info: info, Result: res[info.ImportPath]}
		switch {
		case p.Result == nil || p.Result.BuildFailed:
			p.State = Broken
		case info.Lab.Kind == Experiment:
			p.State = Ready
			if p.Result.Status != Pass {
				p.State = Failing
			}
		default:
			for _, t := range info.Tasks {
				if tr := p.Result.Tests[t.Test]; tr != nil && tr.Status == Pass {
					p.Passed++
				}
			}
			switch {
			case len(info.Tasks) > 0 && p.Passed == len(info.Tasks) && p.Result.Status == Pass:
				p.State = Passed
			case p.Passed == 0 && !edited(r.Root, info):
				p.State = NotStarted
			default:
				p.State = Failing
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// edited reports whether git sees changes to the lab's stub files. Without
// git, a lab with no passing task counts as not started.
func edited(root string, info *LabInfo) bool {
	args := []string{"status", "--porcelain", "--"}
	for _, s := range info.Stubs {
		args = append(args, filepath.Join(info.Dir, s))
	}
	cmd := exec.Command("git", args...)
	cmd.Dir = root
	out, err := cmd.Output()
	return err == nil && len(out) > 0
}
