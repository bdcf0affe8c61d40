//go:build floodgate.solution && unix

package sink_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"floodgate/capstone/sink"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const crashDirEnv = "FLOODGATE_SINK_CRASH_DIR"

// TestWriteThroughSurvivesSIGKILL runs a child process (this test binary)
// that accepts 25 records with WriteThrough, into a sink that is down, and
// then kills itself with SIGKILL: no Close, no deferred function. A new
// pipeline on the same spool delivers all 25, in order.
func TestWriteThroughSurvivesSIGKILL(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestWriteThroughSurvivesSIGKILL$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "the child must die, got %v: %s", err, out)
	ws, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, "the child must die of SIGKILL: %v: %s", err, out)

	synctest.Test(t, func(t *testing.T) {
		ms := &memorySink{}
		p, err := sink.New(sink.Config{SpoolDir: dir}, ms)
		require.NoError(t, err)
		assert.Equal(t, 25, p.Stats().SpoolDepth)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		synctest.Wait()
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, p.Close())
		got := ms.got()
		require.Len(t, got, 25)
		for i := range got {
			assert.Equal(t, rec(1, i).Payload, got[i].Payload)
		}
	})
}

// crashChild accepts 25 records and dies without a word.
func crashChild(dir string) {
	p, err := sink.New(sink.Config{SpoolDir: dir, WriteThrough: true}, failingSink{})
	if err != nil {
		os.Exit(3)
	}
	for i := range 25 {
		if p.Submit(rec(1, i)) != nil {
			os.Exit(4)
		}
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL is on its way
}
