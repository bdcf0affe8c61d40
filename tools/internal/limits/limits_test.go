package limits

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func find(t *testing.T, r Report, name string) Limit {
	t.Helper()
	for _, l := range r.Limits {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("no row %q in %+v", name, r.Limits)
	return Limit{}
}

func TestReadSmallMachine(t *testing.T) {
	r, err := Read("testdata/small", Options{BytesPerConn: 10 << 10})
	require.NoError(t, err)

	soft := find(t, r, "RLIMIT_NOFILE (soft)")
	assert.Equal(t, "1024", soft.Value)
	assert.EqualValues(t, 1024-fdReserve, soft.Caps)
	hard := find(t, r, "RLIMIT_NOFILE (hard)")
	assert.Equal(t, "20000", hard.Value)
	assert.EqualValues(t, 20000-fdReserve, hard.Caps)
	assert.Equal(t, "1000064", hard.Suggest)

	nr := find(t, r, "fs.nr_open")
	assert.Equal(t, "1048576", nr.Value)
	assert.Empty(t, nr.Suggest, "nr_open is already above the target")

	fm := find(t, r, "fs.file-max")
	assert.Equal(t, "2466170 (1324 in use)", fm.Value)
	assert.EqualValues(t, 2466170-1324, fm.Caps)

	pr := find(t, r, "net.ipv4.ip_local_port_range")
	assert.Equal(t, "32768 60999", pr.Value)
	assert.EqualValues(t, 60999-32768+1, pr.Caps)
	assert.Equal(t, "1024 65535", pr.Suggest)

	assert.Equal(t, Unlimited, find(t, r, "net.core.somaxconn").Caps, "the backlog caps no count")
	assert.Equal(t, "65535", find(t, r, "net.ipv4.tcp_max_syn_backlog").Suggest)
	assert.Equal(t, "65535", find(t, r, "net.core.somaxconn").Suggest)

	mem := find(t, r, "MemAvailable")
	assert.EqualValues(t, 23952816*1024/(10<<10), mem.Caps)

	ct := find(t, r, "net.netfilter.nf_conntrack_max")
	assert.EqualValues(t, 262144, ct.Caps)

	assert.Equal(t, "RLIMIT_NOFILE (soft)", r.Bottleneck)
	assert.EqualValues(t, 1024-fdReserve, r.MaxConns)
	for _, l := range r.Limits {
		assert.Empty(t, l.Err, l.Name)
		assert.NotEmpty(t, l.Raise, l.Name)
	}
}

func TestReadTunedMachine(t *testing.T) {
	r, err := Read("testdata/tuned", Options{BytesPerConn: 4096})
	require.NoError(t, err)
	for _, l := range r.Limits {
		assert.NotEqual(t, "net.netfilter.nf_conntrack_max", l.Name, "no conntrack row without the sysctl")
	}
	// 2 GiB available at 4 KiB each: memory is the bottleneck now.
	assert.Equal(t, "MemAvailable", r.Bottleneck)
	assert.EqualValues(t, 2097152*1024/4096, r.MaxConns)
	assert.Equal(t, "3906 MiB", find(t, r, "MemAvailable").Suggest)
	assert.Empty(t, find(t, r, "RLIMIT_NOFILE (hard)").Suggest)
	assert.Empty(t, find(t, r, "net.ipv4.ip_local_port_range").Suggest)
	// fs.file-nr is missing: file-max stands alone.
	assert.Equal(t, "9223372036854775807", find(t, r, "fs.file-max").Value)
}

func TestReadBrokenFiles(t *testing.T) {
	r, err := Read("testdata/broken", Options{})
	require.NoError(t, err, "bad rows get an Err, the report still comes")
	for _, name := range []string{"RLIMIT_NOFILE (soft)", "fs.nr_open", "fs.file-max",
		"net.ipv4.ip_local_port_range", "net.core.somaxconn", "MemAvailable"} {
		l := find(t, r, name)
		assert.NotEmpty(t, l.Err, name)
		assert.Equal(t, Unlimited, l.Caps, name)
	}
	assert.Equal(t, Unlimited, r.MaxConns)
	assert.Empty(t, r.Bottleneck)

	_, err = Read("testdata/no-such-root", Options{})
	assert.Error(t, err)
}

func TestParseNofile(t *testing.T) {
	soft, hard, err := parseNofile("Max open files            unlimited            unlimited            files\n")
	require.NoError(t, err)
	assert.EqualValues(t, -1, soft)
	assert.EqualValues(t, -1, hard)
	_, _, err = parseNofile("Max processes 1 1\n")
	assert.Error(t, err)
}

func FuzzParseNofile(f *testing.F) {
	b, err := os.ReadFile("testdata/small/proc/self/limits")
	require.NoError(f, err)
	f.Add(string(b))
	f.Add("Max open files  unlimited 5 files")
	f.Fuzz(func(t *testing.T, s string) {
		soft, hard, err := parseNofile(s)
		if err == nil {
			assert.GreaterOrEqual(t, soft, int64(-1))
			assert.GreaterOrEqual(t, hard, int64(-1))
		}
	})
}

// copyTree copies a fixture to a temporary directory that Apply may write.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	require.NoError(t, os.CopyFS(dst, os.DirFS(src)))
	require.NoError(t, filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chmod(p, 0o644) // CopyFS keeps read-only modes
	}))
	return dst
}

func sysctl(t *testing.T, root, key string) string {
	t.Helper()
	s, err := readSysctl(os.DirFS(root), key)
	require.NoError(t, err)
	return s
}

func TestApplyAndRestore(t *testing.T) {
	root := copyTree(t, "testdata/small")
	restore := filepath.Join(t.TempDir(), "restore.json")

	_, err := Apply(root, Options{}, 1000, restore)
	require.ErrorIs(t, err, ErrNotRoot)
	assert.NoFileExists(t, restore)

	changes, err := Apply(root, Options{}, 0, restore)
	require.NoError(t, err)
	got := map[string][2]string{}
	for _, c := range changes {
		assert.Empty(t, c.Err, c.Key)
		got[c.Key] = [2]string{c.Old, c.New}
	}
	assert.Equal(t, map[string][2]string{
		"net.ipv4.ip_local_port_range":   {"32768 60999", "1024 65535"},
		"net.core.somaxconn":             {"4096", "65535"},
		"net.ipv4.tcp_max_syn_backlog":   {"2048", "65535"},
		"net.netfilter.nf_conntrack_max": {"262144", "1000000"},
	}, got, "only raises, and only where short (nr_open and file-max are not)")
	assert.Equal(t, "65535", sysctl(t, root, "net.core.somaxconn"))
	assert.Equal(t, "1024 65535", sysctl(t, root, "net.ipv4.ip_local_port_range"))
	assert.Equal(t, "1048576", sysctl(t, root, "fs.nr_open"), "untouched")

	var rf RestoreFile
	b, err := os.ReadFile(restore)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &rf))
	assert.Len(t, rf.Values, 4)

	again, err := Plan(root, Options{})
	require.NoError(t, err)
	assert.Empty(t, again, "after Apply nothing is short")

	_, err = Restore(root, restore, 1000)
	require.ErrorIs(t, err, ErrNotRoot)
	restored, err := Restore(root, restore, 0)
	require.NoError(t, err)
	assert.Len(t, restored, 4)
	assert.Equal(t, "4096", sysctl(t, root, "net.core.somaxconn"))
	assert.Equal(t, "32768 60999", sysctl(t, root, "net.ipv4.ip_local_port_range"))
	assert.Equal(t, "2048", sysctl(t, root, "net.ipv4.tcp_max_syn_backlog"))
	assert.Equal(t, "262144", sysctl(t, root, "net.netfilter.nf_conntrack_max"))
}

func TestWriteReportsUnwritableSysctls(t *testing.T) {
	root := copyTree(t, "testdata/tuned") // has no conntrack sysctl
	changes, err := writeAll(root, []Change{
		{Key: "net.netfilter.nf_conntrack_max", New: "1000000"},
		{Key: "net.core.somaxconn", New: "8192"},
	}, func(c Change) string { return c.New })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "net.netfilter.nf_conntrack_max")
	assert.NotEmpty(t, changes[0].Err)
	assert.Empty(t, changes[1].Err)
	assert.Equal(t, "8192", sysctl(t, root, "net.core.somaxconn"), "the others are still written")
	assert.NoFileExists(t, filepath.Join(root, "proc/sys/net/netfilter/nf_conntrack_max"), "no file is created")
}

func TestRestoreRejectsBadFiles(t *testing.T) {
	root := copyTree(t, "testdata/small")
	dir := t.TempDir()
	for name, body := range map[string]string{
		"notjson":  "hello",
		"badkey":   `{"values":[{"key":"kernel.core_pattern","old":"|/bin/sh"}]}`,
		"emptyold": `{"values":[{"key":"net.core.somaxconn","old":""}]}`,
	} {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		_, err := Restore(root, p, 0)
		assert.Error(t, err, name)
	}
	assert.Equal(t, "4096", sysctl(t, root, "net.core.somaxconn"), "nothing written")
}
