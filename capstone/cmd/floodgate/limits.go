package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"floodgate/capstone/engine"
)

// reservedFDs is what the broker keeps for itself: listeners, the ops
// server, log and store files, the Go runtime.
const reservedFDs = 100

// connectionLimits describes the machine limits that cap the number of
// connections, one line each, for the start-up banner. epoll, if not nil,
// is the epoll engine's plan: with private fd tables RLIMIT_NOFILE caps
// each loop, not the process, and the machine-wide limits take over.
func connectionLimits(maxConns int, epoll *engine.EpollPlan) []string {
	var lines []string
	if p := epoll; p != nil && p.PrivateFDs {
		lines = append(lines, fmt.Sprintf("open files %s per fd table: the epoll engine gives each of its %d loops a table of its own, at most ~%s connections (%d × %s); see tools/cmd/tune",
			group(int64(p.Limit)), p.Loops, group(int64(p.Cap)), p.Loops, group(int64(p.PerLoop))))
		if v, ok := sysctl("/proc/sys/fs/file-max"); ok {
			lines = append(lines, fmt.Sprintf("fs.file-max %s: at most %s open files on the whole machine, clients on it included", groupString(v), groupString(v)))
		}
		if v, ok := memAvailable(); ok {
			lines = append(lines, fmt.Sprintf("memory: %s MiB available; every connection costs kernel socket memory and a session", group(v>>20)))
		}
	} else if soft, ok := openFiles(); ok {
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

// memAvailable returns MemAvailable from /proc/meminfo, in bytes.
func memAvailable() (int64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb << 10, true
				}
			}
		}
	}
	return 0, false
}

// groupString groups a decimal string (a sysctl value).
func groupString(v string) string {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return v
	}
	return group(n)
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
