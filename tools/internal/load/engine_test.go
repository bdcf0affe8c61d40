//go:build linux

package load

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A socket opened by a loop with a private fd table is not in the
// process's table: the same number there is free or another file.
func TestEngine_PrivateFDTableIsPrivate(t *testing.T) {
	s := &shared{cfg: Config{PrivateFDs: true}}
	e, err := newEngine(s, 1)
	require.NoError(t, err)
	e.start()
	defer e.stop()

	type opened struct {
		fd  int
		ino uint64
		err error
	}
	got := make(chan opened, 1)
	e.post(0, func(l *loop) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			got <- opened{err: err}
			return
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		got <- opened{fd: fd, ino: st.Ino, err: err}
		// The socket stays open until the loop's thread ends with e.stop.
	})
	var o opened
	select {
	case o = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not run the posted function")
	}
	require.NoError(t, o.err)
	var st unix.Stat_t
	if err := unix.Fstat(o.fd, &st); err == nil {
		assert.NotEqual(t, o.ino, st.Ino, "fd %d is the loop's socket in the process table too", o.fd)
	} else {
		assert.ErrorIs(t, err, unix.EBADF)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Empty(t, s.errs, "unshare(CLONE_FILES) failed")
}
