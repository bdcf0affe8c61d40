package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// spawnHelperEnv makes TestSpawnHelper act as a bench that started a broker.
const spawnHelperEnv = "FLOODGATE_BENCH_SPAWN_HELPER"

// TestSpawnHelper is not a test on its own: TestSpawn_ChildDiesWithBench
// runs the test binary again with spawnHelperEnv set, and then this starts
// `sleep 60` through spawn (a stand-in broker that stops by itself), prints
// its PID and waits for its stdin to close.
func TestSpawnHelper(t *testing.T) {
	if os.Getenv(spawnHelperEnv) == "" {
		t.Skip("run by TestSpawn_ChildDiesWithBench")
	}
	log, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	r, err := spawn([]string{"sleep", "60"}, log)
	require.NoError(t, err)
	os.Stdout.WriteString("child PID " + strconv.Itoa(r.pid()) + "\n")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until killed, or stdin closes
	require.NoError(t, r.stop())
}

// TestSpawn_ChildDiesWithBench starts a bench stand-in (this test binary,
// running TestSpawnHelper) that starts a child through spawn, SIGKILLs the
// stand-in, and waits, on a pidfd and with a deadline, for the child to die
// with it.
func TestSpawn_ChildDiesWithBench(t *testing.T) {
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("no sleep command:", err)
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	helper := exec.Command(exe, "-test.run=^TestSpawnHelper$", "-test.count=1")
	helper.Env = append(os.Environ(), spawnHelperEnv+"=1")
	helper.Stderr = os.Stderr
	stdin, err := helper.StdinPipe()
	require.NoError(t, err)
	stdout, err := helper.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, helper.Start())
	killed := false
	t.Cleanup(func() {
		stdin.Close()
		if !killed {
			_ = helper.Process.Kill()
			_ = helper.Wait()
		}
	})

	// Read the child's PID, giving up after 30 s rather than hanging.
	require.NoError(t, stdout.(*os.File).SetReadDeadline(time.Now().Add(30*time.Second)))
	pid := 0
	sc := bufio.NewScanner(stdout)
	for pid == 0 && sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "child PID "); ok {
			pid, err = strconv.Atoi(rest)
			require.NoError(t, err)
		}
	}
	require.NotZero(t, pid, "the helper printed no PID: %v", sc.Err())

	// Hold the child by a pidfd: it names this process, never a later one
	// that reuses the PID, and it becomes readable when the process exits.
	pidfd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ENOSYS) {
		t.Skip("pidfd_open needs Linux 5.3")
	}
	require.NoError(t, err)
	defer unix.Close(pidfd)
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(cmdline), "sleep\x00"), "PID %d is %q", pid, cmdline)
	pgid, err := syscall.Getpgid(pid)
	require.NoError(t, err)
	require.Equal(t, pid, pgid, "the child leads its own process group")
	require.False(t, exited(t, pidfd, 0), "the child runs while the helper does")

	require.NoError(t, helper.Process.Signal(syscall.SIGKILL))
	killed = true
	err = helper.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, syscall.SIGKILL, ee.Sys().(syscall.WaitStatus).Signal())

	require.True(t, exited(t, pidfd, 10*time.Second), "the child outlived the SIGKILLed helper")
}

// exited waits up to timeout for the process behind pidfd to exit, and
// reports whether it did.
func exited(t *testing.T, pidfd int, timeout time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, max(0, int(time.Until(deadline).Milliseconds())))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		require.NoError(t, err)
		return n == 1
	}
}
