//go:build floodgate.solution

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// With the reference solutions every part works.
func TestCheckParts_Reference(t *testing.T) {
	assert.Empty(t, checkParts())
}

func TestGroup(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 19900: "19,900", 1234567: "1,234,567", -1500: "-1,500"} {
		assert.Equal(t, want, group(n))
	}
}

// The banner names RLIMIT_NOFILE and the connections it allows.
func TestConnectionLimits(t *testing.T) {
	lines := connectionLimits(500)
	require.NotEmpty(t, lines)
	assert.True(t, strings.HasPrefix(lines[0], "open files "), lines[0])
	assert.Contains(t, lines[0], "see tools/cmd/tune")
	assert.Contains(t, strings.Join(lines, "\n"), "-max-conns 500: the broker refuses connection 501")
}

// Bad configuration is a clear start-up error, before anything listens.
func TestRun_BadConfig(t *testing.T) {
	var out, errb bytes.Buffer
	err := run([]string{"-passwords", filepath.Join(t.TempDir(), "missing")}, &out, &errb)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "-passwords")

	bad := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(bad, []byte("user-without-hash\n"), 0o600))
	err = run([]string{"-passwords", bad}, &out, &errb)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 1")

	err = run([]string{"-log-level", "loud"}, &out, &errb)
	require.Error(t, err)
	err = run([]string{"-engine", "kqueue", "-tcp", "127.0.0.1:0", "-ws", "off", "-ops", "off"}, &out, &errb)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `engine "kqueue"`)
	err = run([]string{"-tls", "127.0.0.1:0", "-tcp", "127.0.0.1:0", "-ws", "off", "-ops", "off"}, &out, &errb)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "TLS")
}
