package brokerproc

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// need skips the test without the commands it runs.
func need(t *testing.T, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("no %s command: %v", c, err)
		}
	}
}

// startSleep starts `sleep 60` (a stand-in broker that stops by itself)
// and stops it when the test ends.
func startSleep(t *testing.T) *Process {
	t.Helper()
	need(t, "sleep")
	p, err := Start([]string{"sleep", "60"}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { p.Stop(5 * time.Second) })
	return p
}

func TestStart_EmptyOrMissingCommand(t *testing.T) {
	_, err := Start(nil, nil)
	require.Error(t, err)
	_, err = Start([]string{"/nonexistent/floodgate-broker"}, nil)
	require.Error(t, err)
}

func TestStop_Terminated(t *testing.T) {
	p := startSleep(t)
	require.NoError(t, p.Err(), "no exit status while it runs")
	require.Equal(t, Terminated, p.Stop(30*time.Second))
	<-p.Exited()
	var ee *exec.ExitError
	require.ErrorAs(t, p.Err(), &ee)
	assert.Equal(t, AlreadyExited, p.Stop(time.Second), "a second Stop finds it gone")
}

func TestStop_AlreadyExited(t *testing.T) {
	need(t, "sh")
	p, err := Start([]string{"sh", "-c", "exit 3"}, nil)
	require.NoError(t, err)
	<-p.Exited()
	require.Equal(t, AlreadyExited, p.Stop(time.Second))
	var ee *exec.ExitError
	require.ErrorAs(t, p.Err(), &ee)
	assert.Equal(t, 3, ee.ExitCode())
}

func TestStop_KilledAfterGrace(t *testing.T) {
	need(t, "sh", "sleep")
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	// The child ignores SIGTERM (exec keeps an ignored signal ignored) and
	// says so before it sleeps.
	p, err := Start([]string{"sh", "-c", `trap "" TERM; echo ready; exec sleep 60`}, w)
	w.Close()
	require.NoError(t, err)
	t.Cleanup(p.Kill)
	line, err := bufio.NewReader(r).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready\n", line)
	require.Equal(t, Killed, p.Stop(50*time.Millisecond))
	var ee *exec.ExitError
	require.ErrorAs(t, p.Err(), &ee)
	assert.Equal(t, "signal: killed", ee.Error())
}

func TestKill(t *testing.T) {
	p := startSleep(t)
	p.Kill()
	<-p.Exited()
	p.Kill() // gone: nothing to do
	require.Error(t, p.Err())
}

func TestWaitListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	free, err := FreePort()
	require.NoError(t, err)
	closed := "127.0.0.1:" + strconv.Itoa(free)

	t.Run("listening", func(t *testing.T) {
		p := startSleep(t)
		require.NoError(t, p.WaitListening(context.Background(), ln.Addr().String(), 30*time.Second))
	})
	t.Run("not in time", func(t *testing.T) {
		p := startSleep(t)
		require.ErrorIs(t, p.WaitListening(context.Background(), closed, 50*time.Millisecond), ErrNotListening)
	})
	t.Run("context ended", func(t *testing.T) {
		p := startSleep(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.ErrorIs(t, p.WaitListening(ctx, closed, 30*time.Second), context.Canceled)
	})
	t.Run("exited", func(t *testing.T) {
		need(t, "true")
		p, err := Start([]string{"true"}, nil)
		require.NoError(t, err)
		require.ErrorIs(t, p.WaitListening(context.Background(), closed, 30*time.Second), ErrExited)
	})
}

func TestFreePort(t *testing.T) {
	port, err := FreePort()
	require.NoError(t, err)
	require.Positive(t, port)
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	require.NoError(t, err, "the port is free to bind")
	ln.Close()
}

func TestWorkspace_Off(t *testing.T) {
	need(t, "go")
	t.Setenv("GOWORK", "off")
	_, err := Workspace(context.Background())
	require.True(t, errors.Is(err, ErrNoWorkspace), "got %v", err)
}
