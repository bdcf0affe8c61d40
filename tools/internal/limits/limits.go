// Package limits reads the limits of a Linux machine that cap how many TCP
// connections one server can hold, estimates the count each allows, and
// says how to raise each one. It can apply the kernel settings (sysctls) for
// a target count and restore them afterwards.
//
// Everything is read from, and written to, files under a root directory
// ("/" on a real machine), so tests run against fixture /proc trees.
package limits

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Defaults for Options.
const (
	// DefaultBytesPerConn is the memory one idle server connection is
	// assumed to cost when Options.BytesPerConn is zero, rounded up from
	// what ch03-networking/01-tcpscale measures: about 4 KiB of Go heap and
	// stack for a goroutine-per-connection server with a 1 KiB buffer, plus
	// about 3.6 KiB of kernel slab for the socket.
	DefaultBytesPerConn = 10 << 10
	// DefaultTarget is the connection count --apply prepares for.
	DefaultTarget = 1_000_000
)

// ErrNotRoot is returned by Apply and Restore when the caller is not root.
var ErrNotRoot = errors.New("limits: changing sysctls needs root")

// scopeClient is the Scope of a limit on the client side of a connection,
// which does not count towards a server's MaxConns.
const scopeClient = "one source address to one server port"

// Unlimited marks a limit that does not cap the number of connections held
// (it caps a rate, a queue, or nothing here).
const Unlimited int64 = -1

// Limit is one row of the report.
type Limit struct {
	Name    string `json:"name"`              // sysctl key, or RLIMIT_NOFILE (soft|hard), MemAvailable
	Value   string `json:"value"`             // current value as read; "" if unavailable
	Caps    int64  `json:"caps"`              // connections this limit allows; Unlimited if it caps no count
	Scope   string `json:"scope"`             // what the cap applies to: a process, the system, one source address
	Suggest string `json:"suggest,omitempty"` // value for Options.Target connections, if this one is short
	Raise   string `json:"raise"`             // how to raise it
	Err     string `json:"error,omitempty"`   // why it could not be read
}

// Report is the result of Read.
type Report struct {
	Target       int64   `json:"target"`
	BytesPerConn int64   `json:"bytes_per_conn"`
	Limits       []Limit `json:"limits"`
	// MaxConns is the smallest cap among the limits that apply to one
	// server process, and Bottleneck names it.
	MaxConns   int64  `json:"max_conns"`
	Bottleneck string `json:"bottleneck"`
}

// Options tunes the estimate. The zero value uses the defaults above.
type Options struct {
	BytesPerConn int64 // memory per connection, for the MemAvailable row
	Target       int64 // connection count that Suggest values aim at
}

func (o Options) withDefaults() Options {
	if o.BytesPerConn <= 0 {
		o.BytesPerConn = DefaultBytesPerConn
	}
	if o.Target <= 0 {
		o.Target = DefaultTarget
	}
	return o
}

// backlog is the accept and SYN queue length suggested for connect storms:
// at 25,000 connects a second it absorbs a 2.6 s stall of the accept loop
// (a GC pause, an EMFILE back-off), where the default 4096 absorbs 0.16 s.
const backlog = 65535

// fdReserve is how many descriptors a server keeps for itself: the
// listener, epoll, logs, the binary's own files.
const fdReserve = 64

// Read builds the report from the /proc tree under root. A file that is
// missing or malformed gives its row an Err and no cap; Read itself fails
// only if root is not a directory.
func Read(root string, opt Options) (Report, error) {
	opt = opt.withDefaults()
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return Report{}, fmt.Errorf("read limits: root %q is not a directory", root)
	}
	fsys := os.DirFS(root)
	r := Report{Target: opt.Target, BytesPerConn: opt.BytesPerConn}
	add := func(l Limit) { r.Limits = append(r.Limits, l) }
	target := opt.Target

	soft, hard, err := readNofile(fsys)
	nofile := func(name string, v int64, raise string) Limit {
		l := Limit{Name: name, Scope: "process", Caps: Unlimited, Raise: raise}
		if err != nil {
			l.Err = err.Error()
			return l
		}
		l.Value, l.Caps = formatLimit(v), capFDs(v)
		if v >= 0 && v < target+fdReserve {
			l.Suggest = strconv.FormatInt(target+fdReserve, 10)
		}
		return l
	}
	add(nofile("RLIMIT_NOFILE (soft)", soft,
		"Go 1.19+ raises the soft limit to the hard one at start-up; elsewhere `ulimit -n N` up to the hard limit"))
	add(nofile("RLIMIT_NOFILE (hard)", hard,
		"as root: `prlimit --nofile=N:N`, LimitNOFILE= in a systemd unit, or nofile in /etc/security/limits.conf; at most fs.nr_open. A container's limit is set by its runtime, and root inside cannot raise it"))

	add(sysctlRow(fsys, "fs.nr_open", "process", target+fdReserve, capFDs,
		"ceiling for the hard RLIMIT_NOFILE: `sysctl -w fs.nr_open=N`"))
	add(fileMaxRow(fsys, target))
	add(portRangeRow(fsys, target))
	add(sysctlRow(fsys, "net.core.somaxconn", "accept queue of one listener", backlog, nil,
		"caps connections not yet accepted, not connections held; in a connect storm the ones beyond it wait for a SYN retry (1 s): `sysctl -w net.core.somaxconn=N` (Go's Listen reads it)"))
	add(sysctlRow(fsys, "net.ipv4.tcp_max_syn_backlog", "half-open connections", backlog, nil,
		"only matters in a connect storm: `sysctl -w net.ipv4.tcp_max_syn_backlog=N`"))
	add(memRow(fsys, opt))
	if _, err := fs.Stat(fsys, sysctlPath("net.netfilter.nf_conntrack_max")); err == nil {
		add(sysctlRow(fsys, "net.netfilter.nf_conntrack_max", "system (tracked flows)", target,
			func(v int64) int64 { return v },
			"each tracked connection takes an entry: `sysctl -w net.netfilter.nf_conntrack_max=N`, or NOTRACK rules for the server's port"))
	}

	r.MaxConns = Unlimited
	for _, l := range r.Limits {
		if l.Caps != Unlimited && l.Scope != scopeClient &&
			(r.MaxConns == Unlimited || l.Caps < r.MaxConns) {
			r.MaxConns, r.Bottleneck = l.Caps, l.Name
		}
	}
	return r, nil
}

// capFDs is how many connections a descriptor limit leaves for sockets.
func capFDs(v int64) int64 {
	if v < 0 {
		return Unlimited
	}
	return max(0, v-fdReserve)
}

func formatLimit(v int64) string {
	if v < 0 {
		return "unlimited"
	}
	return strconv.FormatInt(v, 10)
}

// sysctlPath turns "net.core.somaxconn" into "proc/sys/net/core/somaxconn".
func sysctlPath(key string) string {
	return filepath.ToSlash(filepath.Join("proc/sys", strings.ReplaceAll(key, ".", "/")))
}

func readSysctl(fsys fs.FS, key string) (string, error) {
	b, err := fs.ReadFile(fsys, sysctlPath(key))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	return strings.Join(strings.Fields(string(b)), " "), nil
}

func readSysctlInt(fsys fs.FS, key string) (int64, string, error) {
	s, err := readSysctl(fsys, key)
	if err != nil {
		return 0, "", err
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, s, fmt.Errorf("read %s: not an integer: %q", key, s)
	}
	return v, s, nil
}

// sysctlRow reads an integer sysctl. caps, if not nil, turns its value into
// a connection cap; suggest is the least value for the target.
func sysctlRow(fsys fs.FS, key, scope string, suggest int64, caps func(int64) int64, raise string) Limit {
	l := Limit{Name: key, Scope: scope, Caps: Unlimited, Raise: raise}
	v, s, err := readSysctlInt(fsys, key)
	l.Value = s
	if err != nil {
		l.Err = err.Error()
		return l
	}
	if caps != nil {
		l.Caps = caps(v)
	}
	if v < suggest {
		l.Suggest = strconv.FormatInt(suggest, 10)
	}
	return l
}

// fileMaxRow reads fs.file-max, less the descriptors already open system
// wide (the first field of fs.file-nr), when that is readable.
func fileMaxRow(fsys fs.FS, target int64) Limit {
	l := sysctlRow(fsys, "fs.file-max", "system (all processes)", 2*target, capFDs,
		"`sysctl -w fs.file-max=N`")
	if l.Err != "" {
		return l
	}
	if nr, err := readSysctl(fsys, "fs.file-nr"); err == nil {
		f := strings.Fields(nr)
		if len(f) == 3 {
			used, err1 := strconv.ParseInt(f[0], 10, 64)
			limit, err2 := strconv.ParseInt(f[2], 10, 64)
			if err1 == nil && err2 == nil {
				l.Caps = max(0, limit-used)
				l.Value = fmt.Sprintf("%d (%d in use)", limit, used)
			}
		}
	}
	return l
}

// portRangeRow reads net.ipv4.ip_local_port_range. It caps the connections
// that one client address can open to one server address and port, so it
// binds a load generator on the same box, not the server.
func portRangeRow(fsys fs.FS, target int64) Limit {
	l := Limit{Name: "net.ipv4.ip_local_port_range", Scope: scopeClient, Caps: Unlimited,
		Raise: "`sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\"`; beyond ~64K, dial from many source addresses (127.0.0.2, 127.0.0.3, ...)"}
	s, err := readSysctl(fsys, "net.ipv4.ip_local_port_range")
	l.Value = s
	if err != nil {
		l.Err = err.Error()
		return l
	}
	lo, hi, err := parsePortRange(s)
	if err != nil {
		l.Err = err.Error()
		return l
	}
	l.Caps = hi - lo + 1
	if lo > 1024 || hi < 65535 {
		l.Suggest = fmt.Sprintf("%d %d", min(lo, 1024), max(hi, 65535))
	}
	return l
}

func parsePortRange(s string) (lo, hi int64, err error) {
	f := strings.Fields(s)
	if len(f) == 2 {
		lo, err1 := strconv.ParseInt(f[0], 10, 64)
		hi, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 == nil && err2 == nil && 0 < lo && lo <= hi && hi <= 65535 {
			return lo, hi, nil
		}
	}
	return 0, 0, fmt.Errorf("read net.ipv4.ip_local_port_range: want two ports low high, got %q", s)
}

// memRow estimates connections from MemAvailable in /proc/meminfo.
func memRow(fsys fs.FS, opt Options) Limit {
	l := Limit{Name: "MemAvailable", Scope: "system (memory)", Caps: Unlimited,
		Raise: fmt.Sprintf("assumes %d B per connection (--bytes-per-conn): make each connection cheaper (no goroutine or buffer per idle connection: see ch03-networking/02-epoll), or add memory", opt.BytesPerConn)}
	kb, err := readMeminfo(fsys, "MemAvailable")
	if err != nil {
		l.Err = err.Error()
		return l
	}
	l.Value = fmt.Sprintf("%d MiB", kb>>10)
	l.Caps = kb * 1024 / opt.BytesPerConn
	if l.Caps < opt.Target {
		l.Suggest = fmt.Sprintf("%d MiB", opt.Target*opt.BytesPerConn>>20)
	}
	return l
}

func readMeminfo(fsys fs.FS, field string) (int64, error) {
	f, err := fsys.Open("proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("read meminfo: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		v := strings.Fields(rest)
		if len(v) >= 1 {
			if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
				return n, nil
			}
		}
		return 0, fmt.Errorf("read meminfo: bad %s line %q", field, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read meminfo: %w", err)
	}
	return 0, fmt.Errorf("read meminfo: no %s line", field)
}

// readNofile returns the soft and hard RLIMIT_NOFILE of the reading process
// from proc/self/limits; -1 means unlimited.
func readNofile(fsys fs.FS) (soft, hard int64, err error) {
	b, err := fs.ReadFile(fsys, "proc/self/limits")
	if err != nil {
		return 0, 0, fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	return parseNofile(string(b))
}

// parseNofile finds the "Max open files  SOFT  HARD  files" line.
func parseNofile(s string) (soft, hard int64, err error) {
	for line := range strings.Lines(s) {
		rest, ok := strings.CutPrefix(line, "Max open files")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) >= 2 {
			soft, err1 := parseLimitValue(f[0])
			hard, err2 := parseLimitValue(f[1])
			if err1 == nil && err2 == nil {
				return soft, hard, nil
			}
		}
		return 0, 0, fmt.Errorf("read RLIMIT_NOFILE: bad line %q", strings.TrimSpace(line))
	}
	return 0, 0, errors.New("read RLIMIT_NOFILE: no \"Max open files\" line in limits")
}

func parseLimitValue(s string) (int64, error) {
	if s == "unlimited" {
		return -1, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad limit %q", s)
	}
	return v, nil
}
