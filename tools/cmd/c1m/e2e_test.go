//go:build linux && floodgate.solution

package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"floodgate/tools/internal/mochibroker"
)

// fakeBroker is the test binary run as a broker (C1M_TEST_FAKE_BROKER=1):
// mochi-mqtt on -tcp, and on -ops a /metrics page with Floodgate's names
// for mochi's counts. It logs an engine line as Floodgate does and stops
// on SIGTERM.
func fakeBroker(args []string) int {
	fs := flag.NewFlagSet("fake", flag.ContinueOnError)
	tcp := fs.String("tcp", "", "")
	ops := fs.String("ops", "", "")
	fs.String("ws", "", "")
	fs.String("engine", "", "")
	fs.Int("max-conns", 0, "")
	fs.String("log-level", "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	ln, err := net.Listen("tcp", *tcp)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv, err := mochibroker.Start(ln, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "floodgate_connections_current %d\nfloodgate_subscriptions %d\n",
			atomic.LoadInt64(&srv.Info.ClientsConnected), atomic.LoadInt64(&srv.Info.Subscriptions))
	})
	go http.ListenAndServe(*ops, mux)
	fmt.Println(`level=INFO msg="epoll engine: fake (mochi)" loops=1 private_fds=false`)
	<-sig
	// Exit without srv.Close: mochi v2.7.9's Close can deadlock with
	// clients still disconnecting, and the process's end closes it all.
	return 0
}

// The driver end to end, with a stand-in broker process (this test binary
// running mochi) and a fake /proc for the sysctls: 300 clients ramp,
// carry the background load, are swept, counted by both sides, and the
// sysctl the driver raised is restored.
func TestDriver_EndToEndWithAStandInBroker(t *testing.T) {
	o := defaults()
	o.conns, o.pairs, o.rate, o.hold, o.window = 300, 10, 500, time.Second, 100
	o.root = fakeProc(t, 23<<20, "60000") // short of 600 sockets + 65,536 spare
	o.rampTimeout = 30 * time.Second
	p, err := makePlan(o)
	require.NoError(t, err)
	var out bytes.Buffer
	var brokerPID int
	d := &driver{p: p, out: t.TempDir(), stdout: &out, euid: 0,
		startBroker: func(ctx context.Context, d *driver) (*broker, []string, error) {
			t.Setenv(fakeBrokerEnv, "1") // inherited by the child only: TestMain has run
			var argv []string
			b, err := startBroker(ctx, filepath.Join(d.out, "broker.log"), func(addr, opsAddr string) []string {
				argv = brokerArgv(os.Args[0], addr, opsAddr, "epoll", o.conns, nil)
				return argv
			})
			if b != nil {
				brokerPID = b.pid()
			}
			return b, argv, err
		}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := d.run(ctx)
	require.NoError(t, err, out.String())
	require.NotNil(t, rep)
	assert.True(t, rep.AllHeld, "%v\n%s", rep.Verdict, out.String())
	require.NotNil(t, rep.Census)
	assert.EqualValues(t, 300, rep.Census.Held)
	assert.EqualValues(t, 290, rep.Census.Swept)
	assert.EqualValues(t, 300, rep.BrokerMetrics["connections_current"])
	assert.Positive(t, rep.Sent)
	assert.Equal(t, rep.Sent, rep.Received)
	assert.Positive(t, rep.RampSeconds)
	assert.Contains(t, rep.EngineLine, "epoll engine: fake")
	assert.False(t, rep.Sharded)
	assert.Contains(t, rep.BrokerExit, "stopped by SIGTERM")
	require.Len(t, rep.Applied, 1)
	assert.Equal(t, "67460", rep.Applied[0].New, "fs.file-max: 1,324 in use + 600 + 65,536")
	assert.Equal(t, "60000", sysctlAt(t, o.root, "fs/file-max"), "restored")
	require.Len(t, rep.Restored, 1)

	// The broker is gone: its PID no longer names a live child of ours.
	require.NotZero(t, brokerPID)
	assert.ErrorIs(t, syscall.Kill(brokerPID, 0), syscall.ESRCH)

	require.NoError(t, rep.Write(d.out))
	assert.FileExists(t, filepath.Join(d.out, "chart.png"))
}
