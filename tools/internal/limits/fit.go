package limits

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// ErrWontFit is returned by Fit.Err when a run cannot fit on this machine
// even after the sysctls it may raise are raised.
var ErrWontFit = errors.New("limits: the run does not fit on this machine")

// Defaults for Need.
const (
	// DefaultKernelBytesPerPair is the kernel memory (slab) one loopback
	// connection costs, both of its sockets together: about 10 KB, as
	// measured on this kind of machine (9.4 GiB for a million pairs).
	DefaultKernelBytesPerPair = 10_000
	// DefaultBrokerBytesPerConn is the broker's memory per subscribed
	// connection assumed: Floodgate's epoll engine measured 3.3 KB of RSS
	// per idle connection (capstone/BENCHMARKS.md), and 5.2 KB at 200,000
	// after make c1m's background load and sweep; rounded up.
	DefaultBrokerBytesPerConn = 6144
	// DefaultLoadgenBytesPerConn is the load generator's (a struct, a map
	// entry and a keepalive queue slot per connection, rounded up).
	DefaultLoadgenBytesPerConn = 512
	// DefaultHeadroom is memory left for everything else.
	DefaultHeadroom = 1 << 30
	// fileSlack is the files left free system wide beyond the run's own.
	fileSlack = 65_536
)

// Need is what a run of Conns loopback connections needs when both ends,
// the broker and the load generator, are on this machine: 2×Conns sockets.
// Zero fields take the defaults above; Conns must be set.
type Need struct {
	Conns int64
	// SourceAddrs is how many source addresses the load generator spreads
	// its connections over, evenly, all to one broker address and port.
	SourceAddrs int64
	// FilesPerTable is the most descriptors one fd table must hold (the
	// busiest load generator loop, or the broker's busiest shard). 0: not
	// checked.
	FilesPerTable       int64
	KernelBytesPerPair  int64
	BrokerBytesPerConn  int64
	LoadgenBytesPerConn int64
	Headroom            int64
}

func (n Need) withDefaults() Need {
	def := func(p *int64, v int64) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&n.KernelBytesPerPair, DefaultKernelBytesPerPair)
	def(&n.BrokerBytesPerConn, DefaultBrokerBytesPerConn)
	def(&n.LoadgenBytesPerConn, DefaultLoadgenBytesPerConn)
	def(&n.Headroom, DefaultHeadroom)
	return n
}

// Memory is the memory the run needs: kernel, broker, load generator and
// headroom, in bytes.
func (n Need) Memory() int64 {
	n = n.withDefaults()
	return n.Conns*(n.KernelBytesPerPair+n.BrokerBytesPerConn+n.LoadgenBytesPerConn) + n.Headroom
}

// Check is one line of a Fit.
type Check struct {
	Name string `json:"name"`
	Have string `json:"have"`
	Need string `json:"need"`
	OK   bool   `json:"ok"`
	// Fixable says that the Fit's Plan raises it (as root).
	Fixable bool `json:"fixable,omitempty"`
	// Advisory says that a shortfall may not matter (conntrack, when
	// loopback is not tracked): Err does not refuse for it.
	Advisory bool   `json:"advisory,omitempty"`
	Note     string `json:"note,omitempty"`
}

// Fit says whether a Need fits, what is short, and which sysctl changes
// (Plan) would make it fit.
type Fit struct {
	Need   Need     `json:"need"`
	Checks []Check  `json:"checks"`
	Plan   []Change `json:"plan,omitempty"`
}

// CheckFit reads the machine under root (as Read does) and checks n against
// it: free files system wide (fs.file-max less fs.file-nr), fs.nr_open and
// the soft RLIMIT_NOFILE against FilesPerTable, MemAvailable against
// n.Memory(), and the local port range against Conns spread over
// SourceAddrs. Where a sysctl is short and raising it is enough, the check
// is Fixable and Plan holds the change; nf_conntrack_max, when the module
// is loaded, is planned up to Conns plus slack, so that a table that does
// track loopback never drops the run's SYNs. Nothing is ever lowered.
func CheckFit(root string, n Need) (Fit, error) {
	n = n.withDefaults()
	if n.Conns <= 0 {
		return Fit{}, fmt.Errorf("limits: fit: conns %d must be positive", n.Conns)
	}
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return Fit{}, fmt.Errorf("limits: fit: root %q is not a directory", root)
	}
	fsys := os.DirFS(root)
	f := Fit{Need: n}
	add := func(c Check) { f.Checks = append(f.Checks, c) }
	plan := func(key string, v int64) {
		old, err := readSysctl(fsys, key)
		if err == nil {
			f.Plan = append(f.Plan, Change{Key: key, Old: old, New: strconv.FormatInt(v, 10)})
		}
	}

	// Files: both ends of every connection are open files.
	files := 2 * n.Conns
	fm := Check{Name: "fs.file-max (free files, system wide)", Need: fmt.Sprintf("%s sockets + %s spare", Group(files), Group(fileSlack))}
	if max, _, err := readSysctlInt(fsys, "fs.file-max"); err != nil {
		fm.Have, fm.Note = "?", err.Error()
	} else {
		used := int64(0)
		if nr, err := readSysctl(fsys, "fs.file-nr"); err == nil {
			if v := strings.Fields(nr); len(v) == 3 {
				used, _ = strconv.ParseInt(v[0], 10, 64)
			}
		}
		fm.Have = fmt.Sprintf("%s free (%s max, %s in use)", Group(max-used), Group(max), Group(used))
		fm.OK = max-used >= files+fileSlack
		if !fm.OK {
			fm.Fixable = true
			fm.Note = "raised for the run"
			plan("fs.file-max", used+files+fileSlack)
		}
	}
	add(fm)

	if n.FilesPerTable > 0 {
		per := n.FilesPerTable + fdReserve
		nr := Check{Name: "fs.nr_open (files per fd table, ceiling)", Need: Group(per)}
		if v, _, err := readSysctlInt(fsys, "fs.nr_open"); err != nil {
			nr.Have, nr.Note = "?", err.Error()
		} else {
			nr.Have, nr.OK = Group(v), v >= per
			if !nr.OK {
				nr.Fixable, nr.Note = true, "raised for the run"
				plan("fs.nr_open", per)
			}
		}
		add(nr)
		rl := Check{Name: "RLIMIT_NOFILE (soft, per fd table)", Need: Group(per)}
		if soft, _, err := readNofile(fsys); err != nil {
			rl.Have, rl.Note = "?", err.Error()
		} else {
			rl.Have, rl.OK = formatLimit(soft), soft < 0 || soft >= per
			if !rl.OK {
				rl.Note = "a process limit no sysctl raises: spread the sockets over more fd tables (event loops)"
			}
		}
		add(rl)
	}

	mem := Check{Name: "MemAvailable", Need: fmt.Sprintf("%s (kernel %s B/pair, broker %s B/conn, load generator %s B/conn, %s headroom)",
		GiB(n.Memory()), Group(n.KernelBytesPerPair), Group(n.BrokerBytesPerConn), Group(n.LoadgenBytesPerConn), GiB(n.Headroom))}
	if kb, err := readMeminfo(fsys, "MemAvailable"); err != nil {
		mem.Have, mem.Note = "?", err.Error()
	} else {
		have := kb << 10
		mem.Have, mem.OK = GiB(have), have >= n.Memory()
		if !mem.OK {
			per := n.KernelBytesPerPair + n.BrokerBytesPerConn + n.LoadgenBytesPerConn
			mem.Note = fmt.Sprintf("about %s connections fit", Group(max(0, have-n.Headroom)/per))
		}
	}
	add(mem)

	pr := Check{Name: "net.ipv4.ip_local_port_range × source addresses"}
	if s, err := readSysctl(fsys, "net.ipv4.ip_local_port_range"); err != nil {
		pr.Have, pr.Note = "?", err.Error()
	} else if lo, hi, err := parsePortRange(s); err != nil {
		pr.Have, pr.Note = s, err.Error()
	} else {
		ports := hi - lo + 1
		srcs := max(n.SourceAddrs, 1)
		perAddr := (n.Conns + srcs - 1) / srcs
		pr.Have = fmt.Sprintf("%s ports × %s addresses", Group(ports), Group(srcs))
		pr.Need = fmt.Sprintf("%s ports per address", Group(perAddr))
		pr.OK = perAddr <= ports
		if !pr.OK {
			pr.Note = fmt.Sprintf("use at least %s source addresses", Group((n.Conns+ports-1)/ports))
		}
	}
	add(pr)

	if _, err := os.Stat(root + "/" + sysctlPath("net.netfilter.nf_conntrack_max")); err == nil {
		want := n.Conns + fileSlack
		ct := Check{Name: "net.netfilter.nf_conntrack_max", Need: Group(want) + " if loopback is tracked", Advisory: true}
		if v, _, err := readSysctlInt(fsys, "net.netfilter.nf_conntrack_max"); err != nil {
			ct.Have, ct.Note, ct.OK = "?", err.Error(), true
		} else {
			ct.Have = Group(v)
			ct.OK = v >= want
			if !ct.OK {
				ct.Fixable, ct.Note = true, "raised for the run as root (harmless if loopback is not tracked); watch nf_conntrack_count"
				plan("net.netfilter.nf_conntrack_max", want)
			}
		}
		add(ct)
	}
	return f, nil
}

// Err returns nil if every check is OK, Advisory, or Fixable (with
// canApply), and otherwise an error wrapping ErrWontFit that lists what is short and why.
func (f Fit) Err(canApply bool) error {
	var short []string
	for _, c := range f.Checks {
		if c.OK || c.Advisory || (c.Fixable && canApply) {
			continue
		}
		line := fmt.Sprintf("  %s: have %s, need %s", c.Name, c.Have, c.Need)
		if c.Fixable {
			line += " (root could raise it: run as root)"
		}
		if c.Note != "" && !c.Fixable {
			line += ": " + c.Note
		}
		short = append(short, line)
	}
	if len(short) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s connections:\n%s", ErrWontFit, Group(f.Need.Conns), strings.Join(short, "\n"))
}

// ApplyPlan writes plan (for example a Fit's) under root, as root (euid 0;
// otherwise ErrNotRoot and nothing changes). Every key must be in Tunable.
// The old values are saved to restorePath before anything is written, so
// that Restore can undo a partial apply too. A change whose new value is
// not above the current one (compared as integers) is refused: it never
// lowers.
func ApplyPlan(root string, plan []Change, euid int, restorePath string) ([]Change, error) {
	if euid != 0 {
		return nil, ErrNotRoot
	}
	fsys := os.DirFS(root)
	plan = slices.Clone(plan)
	for i, c := range plan {
		if !slices.Contains(Tunable, c.Key) {
			return nil, fmt.Errorf("apply: %s is not a sysctl this tool changes", c.Key)
		}
		cur, err := readSysctl(fsys, c.Key)
		if err != nil {
			return nil, fmt.Errorf("apply: %w", err)
		}
		if !raises(cur, c.New) {
			return nil, fmt.Errorf("apply: %s=%q would not raise %q", c.Key, c.New, cur)
		}
		plan[i].Old = cur
	}
	if err := saveRestore(restorePath, plan); err != nil {
		return nil, err
	}
	return writeAll(root, plan, func(c Change) string { return c.New })
}

// raises says whether next, an integer, is above cur (only integer
// sysctls are raised this way).
func raises(cur, next string) bool {
	a, b := strings.Fields(cur), strings.Fields(next)
	if len(a) != 1 || len(b) != 1 {
		return false
	}
	x, err1 := strconv.ParseInt(a[0], 10, 64)
	y, err2 := strconv.ParseInt(b[0], 10, 64)
	return err1 == nil && err2 == nil && y > x
}

// GiB writes b bytes in GiB with one decimal: "16.5 GiB".
func GiB(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

// Group writes n with thousands separators: 1,000,000. The tools print
// counts this way (tune, c1m and this package's messages).
func Group(n int64) string {
	if n < 0 {
		return "-" + Group(-n)
	}
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
