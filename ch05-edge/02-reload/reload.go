//go:build !floodgate.solution

package reload

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Apply decodes data (JSON, unknown fields rejected), validates it, and
// makes it the current version if it is newer than the current one. It
// returns the version now current: the new one on success, the old one
// with an error wrapping ErrInvalid (bad JSON or a broken rule) or ErrStale
// (version not newer) otherwise. Apply is safe to call from several
// goroutines: of two racing versions the newer wins.
func (h *Holder) Apply(data []byte) (*Config, error) {
	// TODO(Task 1): decode strictly, Validate, then swap h.cur in only if
	// the version is newer (think about two Apply calls racing).
	return h.Load(), ErrNotImplemented
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
	// TODO(Task 2): read and Apply once, then on each fsnotify event for
	// the file (or each poll tick) re-read it and Apply when it changed.
	// Report each attempt with send(events, ctx.Done(), Event{...}).
	return ErrNotImplemented
}

// WatchEtcd applies the value of key to h now (if the key exists) and
// again on every put, until ctx ends, and reports every attempt on events
// (nil: don't report). A deleted key is reported with ErrDeleted and the
// current version stays. It returns ctx.Err() when ctx ends, or the error
// that ended the watch (e.g. a compacted revision).
func WatchEtcd(ctx context.Context, cli *clientv3.Client, key string, h *Holder, events chan<- Event) error {
	// TODO(Task 3): Get the key, Apply it, then Watch from the revision
	// after the Get and Apply every put.
	return ErrNotImplemented
}
