package reload

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// freePort asks the kernel for a free loopback port. The port is closed
// again before etcd binds it, so another process could take it in
// between; on a test machine that is rare, and etcd then fails loudly.
func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startEtcd starts Debian's etcd on two free loopback ports with a fresh
// data directory, waits until it serves clients, and returns a client for
// it. Cleanup closes the client and stops the etcd it started, by PID.
// It skips the test when etcd is not installed.
func startEtcd(t testing.TB) *clientv3.Client {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not found: install Debian's etcd-server (apt-get install etcd-server)")
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	dataDir := filepath.Join(t.TempDir(), "etcd")
	require.NoError(t, os.Mkdir(dataDir, 0o700))
	cmd := exec.Command(bin,
		"--name", "floodgate", "--data-dir", dataDir, "--logger", "zap",
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "floodgate="+peer)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	// Scan etcd's log for its readiness message; the scanner goroutine
	// drains the log to EOF, which comes when the process exits.
	ready := make(chan struct{})
	drained := make(chan struct{})
	var logTail []string
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		signalled := false
		for sc.Scan() {
			if !signalled {
				logTail = append(logTail, sc.Text())
				// etcd 3.4 logs the first, 3.5 and later the second.
				if strings.Contains(sc.Text(), "serving client traffic") ||
					strings.Contains(sc.Text(), "ready to serve client requests") {
					signalled = true
					close(ready)
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM) // only the etcd we started
		<-drained
		cmd.Wait()
	}
	select {
	case <-ready:
	case <-drained:
		cmd.Wait()
		t.Fatalf("etcd exited before it was ready:\n%s", strings.Join(logTail, "\n"))
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-drained
		cmd.Wait()
		t.Fatalf("etcd not ready after 60s:\n%s", strings.Join(logTail, "\n"))
	}

	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{client},
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		stop()
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() {
		cli.Close()
		stop()
	})
	// One round trip proves the client is connected.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = cli.Get(ctx, "probe")
	require.NoError(t, err)
	return cli
}
