package grpc

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"floodgate/ch05-edge/03-grpc/devicepb"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// callTimeout bounds every call a test makes, so a broken server fails the
// test instead of hanging it.
const callTimeout = 10 * time.Second

// dial returns a client for addr, closed at cleanup.
func dial(t *testing.T, addr string) devicepb.DeviceManagerClient {
	c, closeConn := dialClose(t, addr)
	t.Cleanup(closeConn)
	return c
}

func dialB(b *testing.B, addr string) devicepb.DeviceManagerClient {
	c, closeConn := dialClose(b, addr)
	b.Cleanup(closeConn)
	return c
}

// dialClose returns a plaintext client for addr and a function that closes
// its connection.
func dialClose(t testing.TB, addr string) (devicepb.DeviceManagerClient, func()) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	return devicepb.NewDeviceManagerClient(conn), func() { conn.Close() }
}

// serve runs s on a plain grpc.Server on 127.0.0.1:0 (not Run, which is
// Task 3) and returns a client. Every stream handler that returns is
// reported on ended. Cleanup stops the server and waits for Serve.
func serve(t *testing.T, s *Server) (devicepb.DeviceManagerClient, <-chan error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ended := make(chan error, 16)
	gs := grpc.NewServer(grpc.StreamInterceptor(
		func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			err := h(srv, ss)
			ended <- err
			return err
		}))
	devicepb.RegisterDeviceManagerServer(gs, s)
	done := make(chan struct{})
	go func() { defer close(done); gs.Serve(ln) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	return dial(t, ln.Addr().String()), ended
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

func code(err error) codes.Code { return status.Code(err) }

// TestGeneratedCodeIsCurrent regenerates devicepb into a temporary
// directory and compares it with the committed files.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	for _, tool := range []string{"protoc", "protoc-gen-go", "protoc-gen-go-grpc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: install Debian's protobuf-compiler, protoc-gen-go and protoc-gen-go-grpc", tool)
		}
	}
	out := t.TempDir()
	cmd := exec.Command("protoc", "--proto_path=devicepb", "--go_out="+out, "--go_opt=paths=source_relative",
		"--go-grpc_out="+out, "--go-grpc_opt=paths=source_relative", "device.proto")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	for _, f := range []string{"device.pb.go", "device_grpc.pb.go"} {
		want, err := os.ReadFile(filepath.Join(out, f))
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join("devicepb", f))
		require.NoError(t, err)
		assert.Equal(t, string(want), string(got), "devicepb/%s is stale: run `make generate`", f)
	}
}

func TestTask1_Unary(t *testing.T) {
	s := New(Config{MaxDevices: 60})
	c, _ := serve(t, s)
	ctx := ctxT(t)

	d, err := c.Register(ctx, &devicepb.RegisterRequest{DeviceId: "pump-1", Firmware: "2.4.1"})
	require.NoError(t, err)
	assert.True(t, proto.Equal(&devicepb.Device{DeviceId: "pump-1", Firmware: "2.4.1", Serial: 1}, d), "got %v", d)

	got, err := c.GetDevice(ctx, &devicepb.GetDeviceRequest{DeviceId: "pump-1"})
	require.NoError(t, err)
	assert.True(t, proto.Equal(d, got), "GetDevice returns what Register stored, got %v", got)

	_, err = c.Register(ctx, &devicepb.RegisterRequest{DeviceId: "pump-1"})
	assert.Equal(t, codes.AlreadyExists, code(err), "duplicate id: %v", err)
	_, err = c.Register(ctx, &devicepb.RegisterRequest{})
	assert.Equal(t, codes.InvalidArgument, code(err), "empty id: %v", err)
	_, err = c.Register(ctx, &devicepb.RegisterRequest{DeviceId: strings.Repeat("x", MaxIDLen+1)})
	assert.Equal(t, codes.InvalidArgument, code(err), "long id: %v", err)
	_, err = c.Register(ctx, &devicepb.RegisterRequest{DeviceId: strings.Repeat("x", MaxIDLen)})
	assert.NoError(t, err, "an id of exactly MaxIDLen bytes is fine")
	_, err = c.GetDevice(ctx, &devicepb.GetDeviceRequest{DeviceId: "pump-9"})
	assert.Equal(t, codes.NotFound, code(err), "unknown id: %v", err)

	// 50 registrations at once: every serial handed out exactly once.
	var wg sync.WaitGroup
	serials := make(chan uint64, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := c.Register(ctx, &devicepb.RegisterRequest{DeviceId: fmt.Sprintf("valve-%d", i)})
			if assert.NoError(t, err) {
				serials <- d.GetSerial()
			}
		}()
	}
	wg.Wait()
	close(serials)
	seen := map[uint64]bool{}
	for sn := range serials {
		assert.False(t, seen[sn], "serial %d handed out twice", sn)
		seen[sn] = true
	}
	assert.Len(t, seen, 50)

	// 52 registered; the limit is 60.
	for i := range 8 {
		_, err = c.Register(ctx, &devicepb.RegisterRequest{DeviceId: fmt.Sprintf("fan-%d", i)})
		require.NoError(t, err)
	}
	_, err = c.Register(ctx, &devicepb.RegisterRequest{DeviceId: "one-too-many"})
	assert.Equal(t, codes.ResourceExhausted, code(err), "registry full: %v", err)
}

func TestTask2_Telemetry(t *testing.T) {
	s := New(Config{Source: func(id string, seq uint64) float64 { return float64(len(id)) * float64(seq) }})
	c, ended := serve(t, s)
	ctx := ctxT(t)
	_, err := c.Register(ctx, &devicepb.RegisterRequest{DeviceId: "meter"})
	if code(err) == codes.Unimplemented {
		s.mu.Lock() // Task 1 not done yet: register directly
		s.devices["meter"] = &devicepb.Device{DeviceId: "meter", Serial: 1}
		s.mu.Unlock()
	} else {
		require.NoError(t, err)
	}

	recvAll := func(st devicepb.DeviceManager_StreamTelemetryClient) ([]*devicepb.Sample, error) {
		var out []*devicepb.Sample
		for {
			m, err := st.Recv()
			if err != nil {
				return out, err
			}
			out = append(out, m)
		}
	}

	t.Run("bad requests", func(t *testing.T) {
		for _, tc := range []struct {
			req  *devicepb.TelemetryRequest
			want codes.Code
		}{
			{&devicepb.TelemetryRequest{DeviceId: "nobody", IntervalMs: 1}, codes.NotFound},
			{&devicepb.TelemetryRequest{DeviceId: "meter", IntervalMs: 0}, codes.InvalidArgument},
			{&devicepb.TelemetryRequest{DeviceId: "meter", IntervalMs: MaxIntervalMS + 1}, codes.InvalidArgument},
		} {
			st, err := c.StreamTelemetry(ctx, tc.req)
			require.NoError(t, err)
			_, err = recvAll(st)
			assert.Equal(t, tc.want, code(err), "%v: %v", tc.req, err)
			<-ended
		}
	})
	t.Run("max_samples then end of stream", func(t *testing.T) {
		st, err := c.StreamTelemetry(ctx, &devicepb.TelemetryRequest{DeviceId: "meter", IntervalMs: 1, MaxSamples: 5})
		require.NoError(t, err)
		got, err := recvAll(st)
		require.ErrorIs(t, err, io.EOF, "the stream ends cleanly after max_samples")
		require.Len(t, got, 5)
		for i, m := range got {
			assert.Equal(t, uint64(i+1), m.GetSeq())
			assert.Equal(t, "meter", m.GetDeviceId())
			assert.Equal(t, 5*float64(i+1), m.GetValue(), "value comes from Config.Source")
		}
		require.NoError(t, <-ended)
	})
	t.Run("client deadline ends the stream on both sides", func(t *testing.T) {
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		st, err := c.StreamTelemetry(dctx, &devicepb.TelemetryRequest{DeviceId: "meter", IntervalMs: 5})
		require.NoError(t, err)
		got, err := recvAll(st)
		assert.Equal(t, codes.DeadlineExceeded, code(err), "%v", err)
		// How many samples beat the deadline depends on the machine's load,
		// so it is logged, not asserted: "max_samples" checks the samples.
		t.Logf("%d samples before the deadline", len(got))
		// The handler must notice too, and return, rather than send into a
		// dead stream forever.
		select {
		case herr := <-ended:
			assert.Contains(t, []codes.Code{codes.DeadlineExceeded, codes.Canceled}, code(herr), "handler returned %v", herr)
		case <-time.After(callTimeout):
			t.Fatal("the handler is still running after the client's deadline")
		}
	})
	t.Run("client cancel", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		st, err := c.StreamTelemetry(cctx, &devicepb.TelemetryRequest{DeviceId: "meter", IntervalMs: 1})
		require.NoError(t, err)
		_, err = st.Recv()
		require.NoError(t, err)
		cancel()
		_, err = recvAll(st)
		assert.Equal(t, codes.Canceled, code(err))
		select {
		case herr := <-ended:
			assert.Equal(t, codes.Canceled, code(herr), "handler returned %v", herr)
		case <-time.After(callTimeout):
			t.Fatal("the handler is still running after the client cancelled")
		}
	})
}

func TestTask3_GracefulStop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := New(Config{Grace: 20 * time.Second})
	runCtx, stop := context.WithCancel(t.Context())
	defer stop()
	// alive ends when Run returns, so calls fail at once if it returns early.
	alive, dead := context.WithCancel(t.Context())
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(runCtx, ln); dead() }()

	c := dial(t, ln.Addr().String())
	ctx, cancel := context.WithTimeout(alive, callTimeout)
	defer cancel()
	_, err = c.Register(ctx, &devicepb.RegisterRequest{DeviceId: "gw-7"})
	if code(err) != codes.Unimplemented { // Task 1 may not be done yet
		require.NoError(t, err, "a call through Run's server")
	} else {
		s.mu.Lock()
		s.devices["gw-7"] = &devicepb.Device{DeviceId: "gw-7", Serial: 1}
		s.mu.Unlock()
	}
	// An endless stream: GracefulStop alone would wait for it forever.
	st, err := c.StreamTelemetry(ctx, &devicepb.TelemetryRequest{DeviceId: "gw-7", IntervalMs: 2})
	require.NoError(t, err)
	if _, err := st.Recv(); code(err) != codes.Unimplemented {
		require.NoError(t, err, "a first sample")
	}

	stop()
	for {
		_, err = st.Recv()
		if err != nil {
			break
		}
	}
	if code(err) != codes.Unimplemented {
		assert.Equal(t, codes.Unavailable, code(err), "a stream cut by shutdown says so: %v", err)
	}
	select {
	case err := <-runErr:
		require.NoError(t, err, "Run after its context ended")
	case <-time.After(callTimeout):
		t.Fatal("Run did not return: is GracefulStop waiting for a stream?")
	}
	// The listener is closed: nothing new gets through.
	nctx, ncancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer ncancel()
	_, err = c.GetDevice(nctx, &devicepb.GetDeviceRequest{DeviceId: "gw-7"})
	assert.Equal(t, codes.Unavailable, code(err), "no calls after Run returned: %v", err)
}
