package limits

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Change is one sysctl that Apply or Restore wrote, or tried to.
type Change struct {
	Key string `json:"key"`
	Old string `json:"old"`
	New string `json:"new"`
	Err string `json:"error,omitempty"`
}

// RestoreFile is what Apply saves before it changes anything: the values to
// write back.
type RestoreFile struct {
	Saved  time.Time `json:"saved"`
	Values []Change  `json:"values"` // Key and Old: the value to restore
}

// Tunable lists the sysctls Apply may change and Restore may write, in order.
var Tunable = []string{
	"fs.nr_open",
	"fs.file-max",
	"net.ipv4.ip_local_port_range",
	"net.core.somaxconn",
	"net.ipv4.tcp_max_syn_backlog",
	"net.netfilter.nf_conntrack_max",
}

// Plan returns the sysctl changes that Apply would make under root for
// opt.Target connections: each sysctl whose row in Read's report has a
// Suggest, set to it. Suggestions only raise, never lower. RLIMIT_NOFILE is
// not in it: it belongs to a process, not to the kernel.
func Plan(root string, opt Options) ([]Change, error) {
	opt = opt.withDefaults()
	r, err := Read(root, opt)
	if err != nil {
		return nil, err
	}
	fsys := os.DirFS(root)
	var plan []Change
	for _, key := range Tunable {
		i := slices.IndexFunc(r.Limits, func(l Limit) bool { return l.Name == key })
		if i < 0 || r.Limits[i].Err != "" || r.Limits[i].Suggest == "" {
			continue // absent (conntrack), unreadable, or not short
		}
		old, err := readSysctl(fsys, key) // the raw value: Value may say more
		if err != nil {
			continue
		}
		plan = append(plan, Change{Key: key, Old: old, New: r.Limits[i].Suggest})
	}
	return plan, nil
}

// Apply makes the changes of Plan under root, as root (euid 0; otherwise it
// returns ErrNotRoot and changes nothing). Before it writes any sysctl it
// saves the old values to restorePath, so that Restore can undo a partial
// apply too. A sysctl that cannot be written gets an Err in its Change and
// Apply goes on with the others; the error it returns then joins them.
func Apply(root string, opt Options, euid int, restorePath string) ([]Change, error) {
	if euid != 0 {
		return nil, ErrNotRoot
	}
	plan, err := Plan(root, opt)
	if err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	if err := saveRestore(restorePath, plan); err != nil {
		return nil, err
	}
	return writeAll(root, plan, func(c Change) string { return c.New })
}

// saveRestore writes the restore file for plan (its keys and old values).
func saveRestore(path string, plan []Change) error {
	rf := RestoreFile{Saved: time.Now().UTC(), Values: plan}
	b, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("apply: save restore file: %w", err)
	}
	return nil
}

// Restore writes back the old values saved in the restore file at path, as
// root (euid 0). It refuses a file that names a key outside Tunable or
// that is not a restore file.
func Restore(root, path string, euid int) ([]Change, error) {
	if euid != 0 {
		return nil, ErrNotRoot
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	var rf RestoreFile
	if err := json.Unmarshal(b, &rf); err != nil {
		return nil, fmt.Errorf("restore: %s is not a restore file: %w", path, err)
	}
	fsys := os.DirFS(root)
	changes := make([]Change, 0, len(rf.Values))
	for _, v := range rf.Values {
		if !slices.Contains(Tunable, v.Key) || v.Old == "" {
			return nil, fmt.Errorf("restore: %s: bad entry %q=%q", path, v.Key, v.Old)
		}
		cur, _ := readSysctl(fsys, v.Key)
		changes = append(changes, Change{Key: v.Key, Old: cur, New: v.Old})
	}
	return writeAll(root, changes, func(c Change) string { return c.New })
}

func writeAll(root string, changes []Change, value func(Change) string) ([]Change, error) {
	var errs []error
	for i, c := range changes {
		p := filepath.Join(root, filepath.FromSlash(sysctlPath(c.Key)))
		// O_WRONLY without O_CREATE: a sysctl that does not exist is an error.
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
		if err == nil {
			_, err = f.WriteString(value(c) + "\n")
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			err = fmt.Errorf("write %s: %w", c.Key, err)
			changes[i].Err = err.Error()
			errs = append(errs, err)
		}
	}
	return changes, errors.Join(errs...)
}
