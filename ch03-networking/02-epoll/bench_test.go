package epoll

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	tcpscale "floodgate/ch03-networking/01-tcpscale"
)

// engine is a running echo server of one kind, on loopback.
type engine struct {
	port int
	stop func()
}

func startGoroutines(b *testing.B) engine {
	s, err := tcpscale.New(tcpscale.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, tcpscale.ErrNotImplemented) {
			b.Skip("lab 01-tcpscale is not done: finish it, or run with -tags floodgate.solution")
		}
		b.Fatal(err)
	case <-time.After(10 * time.Millisecond):
	}
	return engine{port: ln.Addr().(*net.TCPAddr).Port, stop: func() {
		s.Shutdown(context.Background())
		<-errc
	}}
}

func startEpoll(b *testing.B) engine {
	l, err := Listen("127.0.0.1:0", Config{})
	if err != nil {
		b.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- l.Run(context.Background()) }()
	return engine{port: l.Addr().Port, stop: func() { l.Close(); <-errc }}
}

var engines = []struct {
	name  string
	start func(*testing.B) engine
}{
	{"goroutine", startGoroutines},
	{"epoll", startEpoll},
}

// BenchmarkBytesPerConn holds the same number of idle connections on lab 1's
// goroutine-per-connection server and on this loop, and reports each one's
// Go memory (heap + stacks) per connection as B/conn. A count, not a time:
// run it with -benchtime=1x, one engine and size per process.
func BenchmarkBytesPerConn(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		n = tcpscale.ConnBudget(n)
		for _, e := range engines {
			b.Run(fmt.Sprintf("engine=%s/conns=%d", e.name, n), func(b *testing.B) {
				var fp tcpscale.Footprint
				for b.Loop() {
					srv := e.start(b)
					var closeAll func()
					var err error
					fp, closeAll, err = tcpscale.MeasureConns(srv.port, n)
					closeAll()
					srv.stop()
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(fp.PerConn()), "B/conn")
				b.ReportMetric(float64(fp.Stacks), "stackB/conn")
				b.ReportMetric(float64(fp.Slab), "slabB/conn")
			})
		}
	}
}

// BenchmarkEchoRoundTrip times one 64-byte echo on one connection.
func BenchmarkEchoRoundTrip(b *testing.B) {
	for _, e := range engines {
		b.Run("engine="+e.name, func(b *testing.B) {
			srv := e.start(b)
			defer srv.stop()
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", srv.port))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := string(make([]byte, 64))
			b.SetBytes(64)
			for b.Loop() {
				if err := echo(c, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
