//go:build floodgate.solution

package reload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Apply decodes data (JSON, unknown fields rejected), validates it, and
// makes it the current version if it is newer than the current one. It
// returns the version now current: the new one on success, the old one
// with an error wrapping ErrInvalid (bad JSON or a broken rule) or ErrStale
// (version not newer) otherwise. Apply is safe to call from several
// goroutines: of two racing versions the newer wins.
func (h *Holder) Apply(data []byte) (*Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return h.Load(), fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return h.Load(), fmt.Errorf("%w: data after the JSON object", ErrInvalid)
	}
	if err := c.Validate(); err != nil {
		return h.Load(), err
	}
	for {
		old := h.cur.Load()
		if c.Version <= old.Version {
			return old, fmt.Errorf("%w: got %d, have %d", ErrStale, c.Version, old.Version)
		}
		// Compare-and-swap, not Store: if another source swapped in a
		// version since our Load, check again against that one.
		if h.cur.CompareAndSwap(old, &c) {
			return &c, nil
		}
	}
}

// DefaultPoll is the polling interval WatchFile falls back to when file
// events are not available.
const DefaultPoll = 2 * time.Second

// FileWatch says how WatchFile watches its file.
type FileWatch struct {
	Path string        // the config file
	Poll time.Duration // > 0: poll at this interval; 0: fsnotify, or DefaultPoll if it fails
}

// WatchFile applies the file at fw.Path to h now and again whenever its
// content changes, until ctx ends, and reports every attempt on events
// (nil: don't report). Replace the file atomically (write a temporary file
// in the same directory, then rename it over the old one): an in-place
// write can be seen half-written. It returns ctx.Err() when ctx ends, or
// the error that stopped the watch.
func WatchFile(ctx context.Context, fw FileWatch, h *Holder, events chan<- Event) error {
	var last []byte // the content last applied or rejected
	check := func() bool {
		start := time.Now()
		data, err := os.ReadFile(fw.Path)
		if err != nil || bytes.Equal(data, last) {
			return true // missing between a remove and a create, or unchanged
		}
		last = data
		cur, err := h.Apply(data)
		return send(events, ctx.Done(), Event{Source: fw.Path, Version: cur.Version, Err: err, Took: time.Since(start)})
	}
	poll := fw.Poll
	var w *fsnotify.Watcher
	if poll <= 0 {
		var err error
		// Watch the directory, not the file: a rename replaces the file's
		// inode, and a watch on the old inode would go quiet.
		if w, err = fsnotify.NewWatcher(); err == nil {
			if err = w.Add(filepath.Dir(fw.Path)); err != nil {
				w.Close()
				w = nil
			}
		}
		if w == nil {
			poll = DefaultPoll
		}
	}
	if w != nil {
		defer w.Close()
	}
	// The first read comes after the watch is in place, so a change made
	// right after it is not missed.
	if !check() {
		return ctx.Err()
	}
	if w == nil {
		t := time.NewTicker(poll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				if !check() {
					return ctx.Err()
				}
			}
		}
	}
	name := filepath.Clean(fw.Path)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-w.Events:
			if !ok {
				return fmt.Errorf("watch %s: fsnotify closed", fw.Path)
			}
			if filepath.Clean(ev.Name) == name && ev.Has(fsnotify.Create|fsnotify.Write|fsnotify.Rename) {
				if !check() {
					return ctx.Err()
				}
			}
		case err, ok := <-w.Errors:
			if !ok {
				return fmt.Errorf("watch %s: fsnotify closed", fw.Path)
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				return fmt.Errorf("watch %s: %w", fw.Path, err)
			}
			if !check() { // events were lost: look at the file itself
				return ctx.Err()
			}
		}
	}
}

// WatchEtcd applies the value of key to h now (if the key exists) and
// again on every put, until ctx ends, and reports every attempt on events
// (nil: don't report). A deleted key is reported with ErrDeleted and the
// current version stays. It returns ctx.Err() when ctx ends, or the error
// that ended the watch (e.g. a compacted revision).
func WatchEtcd(ctx context.Context, cli *clientv3.Client, key string, h *Holder, events chan<- Event) error {
	src := "etcd:" + key
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("watch %s: get: %w", src, err)
	}
	for _, kv := range resp.Kvs {
		start := time.Now()
		cur, err := h.Apply(kv.Value)
		if !send(events, ctx.Done(), Event{Source: src, Version: cur.Version, Err: err, Took: time.Since(start)}) {
			return ctx.Err()
		}
	}
	// Watch from the revision after the Get, so no put between the two is
	// missed and none is seen twice.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range cli.Watch(wctx, key, clientv3.WithRev(resp.Header.Revision+1)) {
		if err := wr.Err(); err != nil {
			return fmt.Errorf("watch %s: %w", src, err)
		}
		for _, ev := range wr.Events {
			start := time.Now()
			var e Event
			if ev.Type == clientv3.EventTypeDelete {
				e = Event{Source: src, Version: h.Load().Version, Err: ErrDeleted}
			} else {
				cur, err := h.Apply(ev.Kv.Value)
				e = Event{Source: src, Version: cur.Version, Err: err, Took: time.Since(start)}
			}
			if !send(events, ctx.Done(), e) {
				return ctx.Err()
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("watch %s: watch channel closed", src)
}
