package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseMemoryLimit(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "4096": 4096, "4096B": 4096, "64KiB": 64 << 10, "512MiB": 512 << 20,
		"2GiB": 2 << 30, "1TiB": 1 << 40, " 24MiB ": 24 << 20,
	} {
		got, err := parseMemoryLimit(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "MiB", "-1", "1.5GiB", "12MB", "12 MiB", "1mib", "99999999999TiB", "x"} {
		_, err := parseMemoryLimit(in)
		assert.ErrorIs(t, err, errMemoryLimit, "%q", in)
	}
}

// A bad -memory-limit is a start-up error that names the flag, before
// anything runs (and before the process's limit changes).
func TestRun_BadMemoryLimit(t *testing.T) {
	var out, errb strings.Builder
	err := run([]string{"-memory-limit", "lots", "-tcp", "127.0.0.1:0", "-ws", "off", "-ops", "off"}, &out, &errb)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "-memory-limit")
	assert.ErrorIs(t, err, errMemoryLimit)
}
