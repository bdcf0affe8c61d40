//go:build floodgate.solution

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"floodgate/capstone/engine"

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
	lines := connectionLimits(500, nil)
	require.NotEmpty(t, lines)
	assert.True(t, strings.HasPrefix(lines[0], "open files "), lines[0])
	assert.Contains(t, lines[0], "see tools/cmd/tune")
	assert.Contains(t, strings.Join(lines, "\n"), "-max-conns 500: the broker refuses connection 501")
}

// With the epoll engine's private fd tables the banner gives the cap as
// loops × connections per table, and names the machine-wide limits.
func TestConnectionLimits_PrivateFDs(t *testing.T) {
	plan := engine.EpollPlan{Loops: 51, PrivateFDs: true, Limit: 20000, Reserve: 186, PerLoop: 19814, Cap: 51 * 19814}
	lines := connectionLimits(1_000_000, &plan)
	require.NotEmpty(t, lines)
	assert.Equal(t, "open files 20,000 per fd table: the epoll engine gives each of its 51 loops a table of its own, at most ~1,010,514 connections (51 × 19,814); see tools/cmd/tune", lines[0])
	all := strings.Join(lines, "\n")
	if _, err := os.Stat("/proc/sys/fs/file-max"); err == nil {
		assert.Contains(t, all, "fs.file-max ")
	}
	assert.Contains(t, all, "-max-conns 1,000,000: the broker refuses connection 1,000,001")

	// One shared table: RLIMIT_NOFILE caps the process, as before.
	shared := engine.EpollPlan{Loops: 2, Limit: 20000, Reserve: 88, PerLoop: 19912, Cap: 19912}
	lines = connectionLimits(10_000, &shared)
	assert.True(t, strings.HasPrefix(lines[0], "open files "), lines[0])
	assert.NotContains(t, lines[0], "per fd table")
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
