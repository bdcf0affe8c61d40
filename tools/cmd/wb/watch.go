package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"floodgate/tools/internal/workbook"
)

// watch re-runs one lab's check whenever a file in its folder changes. It
// stays on that lab even once it passes: moving on is the reader's call.
func (a *app) watch(ctx context.Context, args []string) (int, error) {
	poll := false
	var rest []string
	for _, s := range args {
		if s == "--poll" || s == "-poll" {
			poll = true
		} else {
			rest = append(rest, s)
		}
	}
	var info *workbook.LabInfo
	var err error
	switch len(rest) {
	case 0:
		info, err = a.nextLab(ctx)
	case 1:
		info, err = a.inspect(rest[0])
	default:
		return 2, errors.New("usage: go tool wb watch [LAB] [--poll]")
	}
	if err != nil {
		return 1, err
	}

	changes, stop, how, err := watchDir(ctx, info.Dir, poll)
	if err != nil {
		return 1, err
	}
	defer stop()
	for {
		if a.c.on {
			fmt.Fprint(a.out, "\033[H\033[2J")
		}
		if _, err := a.checkLab(ctx, info); err != nil && ctx.Err() == nil {
			fmt.Fprintln(a.out, a.c.red(err.Error()))
		}
		fmt.Fprintf(a.out, "\n%s\n", a.c.dim(fmt.Sprintf("watching %s (%s); save a file to re-run, Ctrl-C to stop", info.Lab.Path, how)))
		select {
		case <-ctx.Done():
			return 0, nil
		case <-changes:
		}
	}
}

// nextLab is the first exercise lab that does not pass yet.
func (a *app) nextLab(ctx context.Context) (*workbook.LabInfo, error) {
	var infos []*workbook.LabInfo
	for _, l := range a.m.Labs() {
		if l.Kind != workbook.Exercise {
			continue
		}
		info, err := workbook.Inspect(a.root, l)
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	ps, err := workbook.Progress(ctx, a.runner, workbook.StatusOptions, infos)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if p.State != workbook.Passed {
			return p.Info, nil
		}
	}
	return nil, errors.New("every lab passes; name one to watch")
}

// watchDir sends on changes, at most one pending signal at a time, after a
// .go file in dir changes. It uses file events and falls back to polling
// where they do not work (or when poll is set). stop releases the watcher
// and waits for its goroutine.
func watchDir(ctx context.Context, dir string, poll bool) (changes <-chan struct{}, stop func(), how string, err error) {
	ch := make(chan struct{}, 1)
	notify := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	stop = func() { cancel(); <-done }

	if !poll {
		w, err := fsnotify.NewWatcher()
		if err == nil {
			if err = w.Add(dir); err == nil {
				go func() {
					defer close(done)
					defer w.Close()
					debounce := time.NewTimer(time.Hour)
					debounce.Stop()
					for {
						select {
						case <-ctx.Done():
							return
						case ev, ok := <-w.Events:
							if !ok {
								return
							}
							if strings.HasSuffix(ev.Name, ".go") {
								debounce.Reset(150 * time.Millisecond) // editors write in bursts
							}
						case <-w.Errors:
						case <-debounce.C:
							notify()
						}
					}
				}()
				return ch, stop, "file events", nil
			}
			w.Close()
		}
	}

	go func() {
		defer close(done)
		last := fingerprint(dir)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if f := fingerprint(dir); f != last {
					last = f
					notify()
				}
			}
		}
	}()
	return ch, stop, "polling every second", nil
}

// fingerprint summarises the .go files of dir by name, size and time.
func fingerprint(dir string) string {
	var b strings.Builder
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") {
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, e.Name())); err == nil {
			fmt.Fprintf(&b, "%s %d %d\n", e.Name(), fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return b.String()
}
