package grpc

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"floodgate/ch05-edge/03-grpc/devicepb"
)

// BenchmarkGetDevice is one unary round trip over loopback TCP: client
// marshal, HTTP/2 frame, server handler, and back.
//
//	go test -tags floodgate.solution -run '^$' -bench GetDevice -benchtime 200ms ./03-grpc/
func BenchmarkGetDevice(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := New(Config{})
	ctx, stop := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx, ln) }()
	defer func() { stop(); <-runErr }()
	c := dialB(b, ln.Addr().String())
	cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Register(cctx, &devicepb.RegisterRequest{DeviceId: "pump-1"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.GetDevice(cctx, &devicepb.GetDeviceRequest{DeviceId: "pump-1"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkShutdownStreams measures Run's graceful stop with 100 endless
// telemetry streams open: from cancelling Run's context until Run returns.
//
//	go test -tags floodgate.solution -run '^$' -bench Shutdown -benchtime 20x ./03-grpc/
func BenchmarkShutdownStreams(b *testing.B) {
	const streams = 100
	for range b.N {
		b.StopTimer()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		s := New(Config{})
		ctx, stop := context.WithCancel(context.Background())
		runErr := make(chan error, 1)
		go func() { runErr <- s.Run(ctx, ln) }()
		c, closeConn := dialClose(b, ln.Addr().String())
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		for i := range streams {
			id := fmt.Sprintf("dev-%d", i)
			if _, err := c.Register(cctx, &devicepb.RegisterRequest{DeviceId: id}); err != nil {
				b.Fatal(err)
			}
			st, err := c.StreamTelemetry(cctx, &devicepb.TelemetryRequest{DeviceId: id, IntervalMs: 10})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := st.Recv(); err != nil { // the stream is open on the server
				b.Fatal(err)
			}
		}
		b.StartTimer()
		stop()
		if err := <-runErr; err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cancel()
		closeConn()
	}
}
