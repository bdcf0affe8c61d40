package brokerproc

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// startHelperEnv makes TestStartHelper act as a tool that started a broker.
const startHelperEnv = "FLOODGATE_BROKERPROC_START_HELPER"

// TestStartHelper is not a test on its own: TestStart_ChildDiesWithParent
// runs the test binary again with startHelperEnv set, and then this starts
// `sleep 60` through Start (a stand-in broker that stops by itself), prints
// its PID and waits for its stdin to close.
func TestStartHelper(t *testing.T) {
	if os.Getenv(startHelperEnv) == "" {
		t.Skip("run by TestStart_ChildDiesWithParent")
	}
	log, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer log.Close()
	p, err := Start([]string{"sleep", "60"}, log)
	require.NoError(t, err)
	os.Stdout.WriteString("child PID " + strconv.Itoa(p.PID()) + "\n")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until killed, or stdin closes
	require.Equal(t, Terminated, p.Stop(5*time.Second))
}

// TestStart_ChildDiesWithParent starts a tool stand-in (this test binary,
// running TestStartHelper) that starts a child through Start, SIGKILLs the
// stand-in, and waits, on a pidfd and with a deadline, for the child to die
// with it.
func TestStart_ChildDiesWithParent(t *testing.T) {
	sleepPath, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep command:", err)
	}
	sleepExe, err := filepath.EvalSymlinks(sleepPath)
	require.NoError(t, err)
	exe, err := os.Executable()
	require.NoError(t, err)
	helper := exec.Command(exe, "-test.run=^TestStartHelper$", "-test.count=1")
	helper.Env = append(os.Environ(), startHelperEnv+"=1")
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
	// The PID runs sleep. Not by /proc/PID/cmdline: Start returns once the
	// exec has closed the child's close-on-exec files, and the kernel sets
	// the new program's arguments a little later, so cmdline can still be
	// empty here; /proc/PID/exe is the new program's file by then.
	childExe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	require.NoError(t, err)
	require.Equal(t, sleepExe, childExe, "PID %d runs sleep", pid)
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
