//go:build unix

package sink

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive, non-blocking flock on dir/lock, so that two
// pipelines (two brokers started with the same SpoolDir) cannot interleave
// their segments. The lock goes with the returned file: closing it, or the
// process dying, releases it.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sink open spool: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("sink open spool %s: %w (%v)", dir, ErrSpoolLocked, err)
	}
	return f, nil
}
