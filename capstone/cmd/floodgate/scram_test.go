//go:build floodgate.solution

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"floodgate/capstone/admission"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// -scram-hash USER prints a -scram-users line for the password on standard
// input; -scram-users reads such a file, and a bad one is a clear start-up
// error naming its line.
func TestRun_SCRAM(t *testing.T) {
	old := stdin
	t.Cleanup(func() { stdin = old })
	stdin = strings.NewReader("wonderland\n")
	var out, errb bytes.Buffer
	require.NoError(t, run([]string{"-scram-hash", "alice"}, &out, &errb))
	line := strings.TrimSpace(out.String())
	assert.True(t, strings.HasPrefix(line, "alice:SCRAM-SHA-256$4096:"), line)
	_, err := admission.ParseSCRAMUsers(strings.NewReader(line))
	require.NoError(t, err)

	stdin = strings.NewReader("")
	err = run([]string{"-scram-hash", "alice"}, &out, &errb)
	assert.ErrorContains(t, err, "-scram-hash")
	stdin = strings.NewReader("pw\n")
	err = run([]string{"-scram-hash", "alice", "-scram-iterations", "10"}, &out, &errb)
	assert.ErrorContains(t, err, "iterations")

	bad := filepath.Join(t.TempDir(), "scram")
	require.NoError(t, os.WriteFile(bad, []byte(line+"\nbob:plain\n"), 0o600))
	err = run([]string{"-scram-users", bad}, &out, &errb)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "-scram-users")
	assert.Contains(t, err.Error(), "line 2")
}
