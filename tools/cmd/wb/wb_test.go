package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHelpAndUnknownCommand(t *testing.T) {
	var out bytes.Buffer
	code, err := run(context.Background(), []string{"help"}, &out)
	require.NoError(t, err)
	assert.Equal(t, 0, code)
	assert.Contains(t, out.String(), "verify [LAB...]")

	code, err = run(context.Background(), []string{"frobnicate"}, &out)
	assert.Error(t, err)
	assert.Equal(t, 2, code)
}

// The polling fallback notices a saved .go file, ignores other files, and
// its goroutine ends with stop.
func TestWatchPolling(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "lab.go"), []byte("package lab\n"), 0o644))
	synctest.Test(t, func(t *testing.T) {
		changes, stop, how, err := watchDir(context.Background(), dir, true)
		require.NoError(t, err)
		defer stop()
		assert.Contains(t, how, "polling")

		require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644))
		time.Sleep(3 * time.Second) // the bubble's clock
		synctest.Wait()
		select {
		case <-changes:
			t.Fatal("a change to a file that is not Go re-ran the tests")
		default:
		}

		require.NoError(t, os.WriteFile(filepath.Join(dir, "lab.go"), []byte("package lab\n\nvar x = 1\n"), 0o644))
		time.Sleep(3 * time.Second)
		synctest.Wait()
		select {
		case <-changes:
		default:
			t.Fatal("saving lab.go did not signal a change")
		}
	})
}
