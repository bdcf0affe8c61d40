package limits

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func check(t *testing.T, f Fit, prefix string) Check {
	t.Helper()
	for _, c := range f.Checks {
		if len(c.Name) >= len(prefix) && c.Name[:len(prefix)] == prefix {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", prefix, f.Checks)
	return Check{}
}

// The "small" fixture is this kind of machine: 23.9 GB available, file-max
// 2,466,170, ports 32768-60999, conntrack_max 262,144.
func TestCheckFit_MillionFitsThisMachine(t *testing.T) {
	f, err := CheckFit("testdata/small", Need{Conns: 1_000_000, SourceAddrs: 101})
	require.NoError(t, err)
	assert.True(t, check(t, f, "fs.file-max").OK, "2,464,846 free files hold 2,000,000 sockets")
	assert.True(t, check(t, f, "MemAvailable").OK)
	assert.Equal(t, "16.5 GiB (kernel 10,000 B/pair, broker 6,144 B/conn, load generator 512 B/conn, 1.0 GiB headroom)",
		check(t, f, "MemAvailable").Need)
	pr := check(t, f, "net.ipv4.ip_local_port_range")
	assert.True(t, pr.OK)
	assert.Equal(t, "28,232 ports × 101 addresses", pr.Have)
	assert.Equal(t, "9,901 ports per address", pr.Need)
	ct := check(t, f, "net.netfilter.nf_conntrack_max")
	assert.False(t, ct.OK)
	assert.True(t, ct.Fixable)
	assert.Equal(t, []Change{{Key: "net.netfilter.nf_conntrack_max", Old: "262144", New: "1065536"}}, f.Plan)

	assert.True(t, ct.Advisory)
	assert.NoError(t, f.Err(true), "root raises conntrack_max")
	assert.NoError(t, f.Err(false), "loopback may not be tracked: conntrack alone does not refuse")
}

func TestCheckFit_RefusesWhatNoSysctlFixes(t *testing.T) {
	// Two million: memory is short (29 GB needed, 23.9 GB available), the
	// ports of 20 addresses are short, and 30,000 files per table exceed
	// the soft RLIMIT_NOFILE; file-max is short too, but root raises it.
	f, err := CheckFit("testdata/small", Need{Conns: 2_000_000, SourceAddrs: 20, FilesPerTable: 30_000})
	require.NoError(t, err)
	fm := check(t, f, "fs.file-max")
	assert.False(t, fm.OK)
	assert.True(t, fm.Fixable)
	assert.Contains(t, f.Plan, Change{Key: "fs.file-max", Old: "2466170", New: "4066860"}, "in use + 4,000,000 + 65,536")
	err = f.Err(true)
	require.ErrorIs(t, err, ErrWontFit)
	msg := err.Error()
	assert.Contains(t, msg, "2,000,000 connections")
	assert.Contains(t, msg, "MemAvailable: have 22.8 GiB, need 32.0 GiB")
	assert.Contains(t, msg, "about 1,408,137 connections fit")
	assert.Contains(t, msg, "use at least 71 source addresses")
	assert.Contains(t, msg, "RLIMIT_NOFILE (soft, per fd table): have 1024, need 30,064")
	assert.NotContains(t, msg, "fs.file-max", "root raises it")
	assert.NotContains(t, msg, "nr_open", "1,048,576 is enough")
	err = f.Err(false)
	require.ErrorIs(t, err, ErrWontFit)
	assert.Contains(t, err.Error(), "fs.file-max (free files, system wide): have 2,464,846 free (2,466,170 max, 1,324 in use), need 4,000,000 sockets + 65,536 spare (root could raise it: run as root)")

	_, err = CheckFit("testdata/small", Need{})
	assert.Error(t, err)
	_, err = CheckFit("testdata/no-such-root", Need{Conns: 1})
	assert.Error(t, err)
}

func TestCheckFit_UnreadableFilesAreShort(t *testing.T) {
	f, err := CheckFit("testdata/broken", Need{Conns: 1000, SourceAddrs: 1, FilesPerTable: 1000})
	require.NoError(t, err)
	err = f.Err(true)
	require.ErrorIs(t, err, ErrWontFit)
	for _, name := range []string{"fs.file-max", "fs.nr_open", "MemAvailable", "net.ipv4.ip_local_port_range"} {
		assert.Contains(t, err.Error(), name)
	}
	assert.Empty(t, f.Plan)
}

func TestApplyPlan_RaisesAndRestores(t *testing.T) {
	root := copyTree(t, "testdata/small")
	restore := filepath.Join(t.TempDir(), "restore.json")
	f, err := CheckFit(root, Need{Conns: 2_000_000, SourceAddrs: 100})
	require.NoError(t, err)
	require.Len(t, f.Plan, 2)

	_, err = ApplyPlan(root, f.Plan, 1000, restore)
	require.ErrorIs(t, err, ErrNotRoot)
	assert.NoFileExists(t, restore)

	changes, err := ApplyPlan(root, f.Plan, 0, restore)
	require.NoError(t, err)
	assert.Len(t, changes, 2)
	assert.Equal(t, "4066860", sysctl(t, root, "fs.file-max"))
	assert.Equal(t, "2065536", sysctl(t, root, "net.netfilter.nf_conntrack_max"))
	var rf RestoreFile
	b, err := os.ReadFile(restore)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &rf))
	assert.Equal(t, []Change{{Key: "fs.file-max", Old: "2466170", New: "4066860"},
		{Key: "net.netfilter.nf_conntrack_max", Old: "262144", New: "2065536"}}, rf.Values)

	again, err := CheckFit(root, Need{Conns: 2_000_000, SourceAddrs: 100})
	require.NoError(t, err)
	assert.Empty(t, again.Plan, "nothing left to raise")

	_, err = Restore(root, restore, 0)
	require.NoError(t, err)
	assert.Equal(t, "2466170", sysctl(t, root, "fs.file-max"))
	assert.Equal(t, "262144", sysctl(t, root, "net.netfilter.nf_conntrack_max"))
}

func TestApplyPlan_RefusesToLowerOrTouchOthers(t *testing.T) {
	root := copyTree(t, "testdata/small")
	restore := filepath.Join(t.TempDir(), "restore.json")
	for _, plan := range [][]Change{
		{{Key: "net.core.somaxconn", New: "128"}},
		{{Key: "net.core.somaxconn", New: "4096"}},
		{{Key: "kernel.core_pattern", New: "1"}},
		{{Key: "net.ipv4.ip_local_port_range", New: "1024 65535"}},
		{{Key: "net.core.somaxconn", New: "8192"}, {Key: "fs.file-max", New: "many"}},
	} {
		_, err := ApplyPlan(root, plan, 0, restore)
		assert.Error(t, err, "%v", plan)
	}
	assert.NoFileExists(t, restore, "refused before anything is saved or written")
	assert.Equal(t, "4096", sysctl(t, root, "net.core.somaxconn"))
}

func TestGroupAndGiB(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", -1234567: "-1,234,567", 1_000_000: "1,000,000"} {
		assert.Equal(t, want, Group(n))
	}
	assert.Equal(t, "16.5 GiB", GiB(33<<29))
}
