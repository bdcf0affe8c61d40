package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const fixture = "../../internal/limits/testdata/small"

func runTune(t *testing.T, euid int, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb, euid)
	return code, out.String(), errb.String()
}

func TestTable(t *testing.T) {
	code, out, _ := runTune(t, 1000, "--root", fixture)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "LIMIT")
	assert.Contains(t, out, "FOR 1,000,000")
	assert.Regexp(t, `RLIMIT_NOFILE \(hard\)\s+20000\s+19,936\s+process\s+1000064`, out)
	assert.Regexp(t, `net.ipv4.ip_local_port_range\s+32768 60999\s+28,232`, out)
	assert.Contains(t, out, "about 960 connections; the first limit it meets is RLIMIT_NOFILE (soft)")
	assert.Contains(t, out, "How to raise each:")
}

func TestJSON(t *testing.T) {
	code, out, _ := runTune(t, 1000, "--root", fixture, "--json", "--bytes-per-conn", "4096", "--target", "50000")
	require.Equal(t, 0, code)
	var got struct {
		Target       int64 `json:"target"`
		BytesPerConn int64 `json:"bytes_per_conn"`
		MaxConns     int64 `json:"max_conns"`
		Limits       []struct {
			Name string `json:"name"`
			Caps int64  `json:"caps"`
		} `json:"limits"`
		GOMAXPROCS int `json:"gomaxprocs"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	assert.EqualValues(t, 50000, got.Target)
	assert.EqualValues(t, 4096, got.BytesPerConn)
	assert.EqualValues(t, 960, got.MaxConns)
	assert.Len(t, got.Limits, 9)
	assert.Positive(t, got.GOMAXPROCS)
}

func TestApplyRestore(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.CopyFS(root, os.DirFS(fixture)))
	restore := filepath.Join(t.TempDir(), "restore.json")

	code, _, stderr := runTune(t, 1000, "--root", root, "--apply", "--restore-file", restore)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "root")

	code, out, stderr := runTune(t, 0, "--root", root, "--apply", "--restore-file", restore)
	require.Equal(t, 0, code, stderr)
	assert.Regexp(t, `net.core.somaxconn\s+4096\s+65535\s+applied`, out)
	assert.Contains(t, out, "tune --restore "+restore)
	b, err := os.ReadFile(filepath.Join(root, "proc/sys/net/core/somaxconn"))
	require.NoError(t, err)
	assert.Equal(t, "65535", strings.TrimSpace(string(b)))

	code, out, stderr = runTune(t, 0, "--root", root, "--apply", "--restore-file", restore+".2")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "nothing to change")

	code, out, stderr = runTune(t, 0, "--root", root, "--restore", restore)
	require.Equal(t, 0, code, stderr)
	assert.Regexp(t, `net.core.somaxconn\s+65535\s+4096\s+restored`, out)
	b, err = os.ReadFile(filepath.Join(root, "proc/sys/net/core/somaxconn"))
	require.NoError(t, err)
	assert.Equal(t, "4096", strings.TrimSpace(string(b)))
}

func TestBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--nope"},
		{"extra"},
		{"--apply", "--restore", "x"},
		{"--bytes-per-conn", "0"},
	} {
		code, _, stderr := runTune(t, 0, args...)
		assert.Equal(t, 2, code, args)
		assert.Contains(t, stderr, "usage: tune", args)
	}
	code, _, stderr := runTune(t, 0, "--root", "/no/such/dir")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "not a directory")
}
