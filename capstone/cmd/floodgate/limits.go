package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// reservedFDs is what the broker keeps for itself: listeners, the ops
// server, log and store files, the Go runtime.
const reservedFDs = 100

// connectionLimits describes the machine limits that cap the number of
// connections, one line each, for the start-up banner.
func connectionLimits(maxConns int) []string {
	var lines []string
	if soft, ok := openFiles(); ok {
		most := max(0, int64(soft)-reservedFDs)
		lines = append(lines, fmt.Sprintf("open files %s: at most ~%s connections; see tools/cmd/tune",
			group(int64(soft)), group(most)))
	} else {
		lines = append(lines, "open files: unknown on this system; see tools/cmd/tune")
	}
	if v, ok := sysctl("/proc/sys/net/core/somaxconn"); ok {
		lines = append(lines, fmt.Sprintf("net.core.somaxconn %s: at most %s connections waiting to be accepted at once", v, v))
	}
	if maxConns > 0 {
		lines = append(lines, fmt.Sprintf("-max-conns %s: the broker refuses connection %s and beyond (CONNACK 0x89)",
			group(int64(maxConns)), group(int64(maxConns)+1)))
	}
	return lines
}

func sysctl(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	v := strings.TrimSpace(string(b))
	if _, err := strconv.ParseInt(v, 10, 64); err != nil {
		return "", false
	}
	return v, true
}

// group writes n with thousands separators: 19900 -> "19,900".
func group(n int64) string {
	if n < 0 {
		return "-" + group(-n)
	}
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
