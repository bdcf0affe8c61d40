package cross

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// wantEnv is the environment each target of Matrix needs.
var wantEnv = map[string][]string{
	"linux/arm64":            {"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"},
	"linux/arm/7":            {"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7"},
	"linux/mipsle/softfloat": {"CGO_ENABLED=0", "GOOS=linux", "GOARCH=mipsle", "GOMIPS=softfloat"},
	"linux/riscv64":          {"CGO_ENABLED=0", "GOOS=linux", "GOARCH=riscv64"},
}

// wantELF is the machine each target's binary must be built for.
var wantELF = map[string]elf.Machine{
	"arm64": elf.EM_AARCH64, "arm": elf.EM_ARM, "mipsle": elf.EM_MIPS, "riscv64": elf.EM_RISCV,
}

// buildEdged builds ./cmd/edged with env appended to the test's own
// environment, into a fresh t.TempDir(), and returns the binary's path.
func buildEdged(t *testing.T, env []string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "edged")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/edged")
	cmd.Env = append(os.Environ(), env...)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build with %v:\n%s", env, b)
	return out
}

func TestTask1_BuildEnv(t *testing.T) {
	for _, tgt := range Matrix {
		got := BuildEnv(tgt)
		require.ElementsMatch(t, wantEnv[tgt.String()], got, "BuildEnv(%v)", tgt)
	}
	// The environment must really produce the binary it promises: build
	// each target and read back what the toolchain recorded in it.
	for _, tgt := range Matrix {
		t.Run(tgt.String(), func(t *testing.T) {
			bin := buildEdged(t, BuildEnv(tgt))
			f, err := elf.Open(bin)
			require.NoError(t, err)
			defer f.Close()
			assert.Equal(t, wantELF[tgt.GOARCH], f.Machine, "ELF machine")
			if tgt.GOARCH == "mipsle" {
				assert.Equal(t, "LittleEndian", f.ByteOrder.String())
			}
			assert.Equal(t, elf.ET_EXEC, f.Type, "a static executable, not a PIE needing a loader")
			for _, p := range f.Progs {
				assert.NotEqual(t, elf.PT_INTERP, p.Type, "a dynamic loader means cgo was on")
			}

			bi, err := buildinfo.ReadFile(bin)
			require.NoError(t, err)
			settings := map[string]string{}
			for _, s := range bi.Settings {
				settings[s.Key] = s.Value
			}
			assert.Equal(t, "0", settings["CGO_ENABLED"])
			assert.Equal(t, tgt.GOARCH, settings["GOARCH"])
			if tgt.GOARM != "" {
				assert.Equal(t, tgt.GOARM, settings["GOARM"])
			}
			if tgt.GOMIPS != "" {
				assert.Equal(t, tgt.GOMIPS, settings["GOMIPS"])
			}
		})
	}
}

func TestTask2_ParseReady(t *testing.T) {
	good := []struct {
		line string
		want Ready
	}{
		{"edged ready addr=127.0.0.1:40123 arch=linux/arm64\n",
			Ready{netip.MustParseAddrPort("127.0.0.1:40123"), "linux/arm64"}},
		{"edged ready addr=127.0.0.1:7 arch=linux/mipsle\r\n",
			Ready{netip.MustParseAddrPort("127.0.0.1:7"), "linux/mipsle"}},
		{"edged ready arch=linux/riscv64 addr=[::1]:9000",
			Ready{netip.MustParseAddrPort("[::1]:9000"), "linux/riscv64"}},
	}
	for _, c := range good {
		got, err := ParseReady(c.line)
		require.NoError(t, err, "ParseReady(%q)", c.line)
		assert.Equal(t, c.want, got, "ParseReady(%q)", c.line)
	}
	bad := []string{
		"",
		"\n",
		"listening on 127.0.0.1:40123",
		"edged ready",
		"edged ready addr=127.0.0.1:40123",     // no arch
		"edged ready arch=linux/arm64",         // no addr
		"edged ready addr=127.0.0.1 arch=x",    // no port
		"edged ready addr=localhost:80 arch=x", // not an IP
		"edged ready addr=127.0.0.1:99999 arch=x",
		"edged ready addr= arch=linux/arm",
		"edged ready addr=127.0.0.1:1 arch=",
		"EDGED READY addr=127.0.0.1:1 arch=linux/arm",
	}
	for _, line := range bad {
		_, err := ParseReady(line)
		require.Error(t, err, "ParseReady(%q)", line)
		assert.ErrorIs(t, err, ErrNotReady, "ParseReady(%q)", line)
	}
}

func FuzzParseReady(f *testing.F) {
	f.Add("edged ready addr=127.0.0.1:40123 arch=linux/arm64\n")
	f.Add("edged ready addr=[::1]:1 arch=a addr=127.0.0.1:2")
	f.Add("edged ready addr=:1 arch=")
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseReady(line)
		if err != nil {
			return
		}
		if !r.Addr.IsValid() || r.Arch == "" {
			t.Fatalf("ParseReady(%q) = %+v with no error", line, r)
		}
	})
}

func FuzzParseReading(f *testing.F) {
	f.Add([]byte("sensor-1 temp 21.5"))
	f.Add([]byte("a b NaN"))
	f.Add([]byte("a  b\t1e309"))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseReading(line)
		if err != nil {
			return
		}
		if r.Device == "" || r.Metric == "" || r.Value != r.Value {
			t.Fatalf("ParseReading(%q) = %+v with no error", line, r)
		}
	})
}

// roundTrip checks the line protocol against a running edged: a PING that
// names the binary's architecture, a reading, and a malformed line.
func roundTrip(t *testing.T, addr netip.AddrPort, arch string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 10*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	_, err = c.Write([]byte("PING\nsensor-1 temp 21.5\nbogus\nsensor-2 rh 40\n"))
	require.NoError(t, err)
	r := bufio.NewReader(c)
	for _, want := range []string{"PONG " + arch, "OK 1", "ERR " + ErrFields.Error(), "OK 2"} {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, want, strings.TrimSpace(line))
	}
}

// gone reports whether pid no longer exists: reaped, not a zombie.
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// script writes an executable shell script into dir and returns its path;
// it records its PID in dir/pid (exec keeps the PID).
func script(t *testing.T, body string) (path, pidFile string) {
	dir := t.TempDir()
	path = filepath.Join(dir, "fake-edged")
	pidFile = filepath.Join(dir, "pid")
	src := "#!/bin/sh\necho $$ > " + pidFile + "\n" + body + "\n"
	require.NoError(t, os.WriteFile(path, []byte(src), 0o755))
	return path, pidFile
}

func readPID(t *testing.T, pidFile string) int {
	b, err := os.ReadFile(pidFile)
	require.NoError(t, err, "the fake binary never ran")
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	return pid
}

func TestTask3_Launch(t *testing.T) {
	ctx := context.Background()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("needs /bin/sh for the failure cases")
	}
	t.Run("no readiness line: timeout, child killed and reaped", func(t *testing.T) {
		bin, pidFile := script(t, "exec sleep 60")
		_, err := Launch(ctx, "", bin, time.Second, nil)
		require.ErrorIs(t, err, ErrStartTimeout)
		assert.True(t, gone(readPID(t, pidFile)), "Launch must kill and Wait for its child")
	})
	t.Run("exits before ready", func(t *testing.T) {
		bin, pidFile := script(t, "exit 3")
		_, err := Launch(ctx, "", bin, 20*time.Second, nil)
		require.ErrorIs(t, err, ErrExitedEarly)
		assert.True(t, gone(readPID(t, pidFile)))
	})
	t.Run("wrong first line", func(t *testing.T) {
		bin, pidFile := script(t, "echo hello; exec sleep 60")
		_, err := Launch(ctx, "", bin, 20*time.Second, nil)
		require.ErrorIs(t, err, ErrNotReady)
		assert.True(t, gone(readPID(t, pidFile)))
	})
	if t.Failed() {
		t.FailNow() // the builds below take time: fail fast
	}

	run := func(t *testing.T, tgt Target, env []string, emulator string) {
		bin := buildEdged(t, env)
		e, err := Launch(ctx, emulator, bin, 60*time.Second, os.Stderr)
		require.NoError(t, err)
		pid := e.PID()
		stopped := false
		defer func() {
			if !stopped {
				e.Stop(time.Second)
			}
		}()
		assert.Equal(t, tgt.GOOS+"/"+tgt.GOARCH, e.Arch)
		assert.True(t, e.Addr.Addr().IsLoopback(), "edged must listen on loopback, got %v", e.Addr)
		roundTrip(t, e.Addr, e.Arch)
		stopped = true
		require.NoError(t, e.Stop(30*time.Second), "edged should exit cleanly on SIGTERM")
		assert.True(t, gone(pid), "Stop must reap its child")
	}
	host := Target{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}
	if !t.Run("native "+host.String(), func(t *testing.T) { run(t, host, []string{"CGO_ENABLED=0"}, "") }) {
		t.FailNow()
	}
	for _, tgt := range Matrix {
		t.Run("qemu "+tgt.String(), func(t *testing.T) {
			emu, err := exec.LookPath(Emulator(tgt))
			if err != nil {
				t.Skipf("%s not found: install Debian's qemu-user-static (apt-get install qemu-user-static)", Emulator(tgt))
			}
			run(t, tgt, wantEnv[tgt.String()], emu)
		})
	}
}
