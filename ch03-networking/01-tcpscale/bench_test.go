package tcpscale

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// BenchmarkBytesPerConn holds 2,000 idle connections (fewer if RLIMIT_NOFILE
// is low) for each read-buffer size and reports the server's Go memory per
// connection as B/conn (of which stackB/conn is goroutine stacks), and the
// growth of the kernel's slab per connection, both ends, as slabB/conn. It
// is a count, not a time: run it with -benchtime=1x.
func BenchmarkBytesPerConn(b *testing.B) {
	n := ConnBudget(2000)
	if n < 200 {
		b.Skip("RLIMIT_NOFILE is too low: raise it (ulimit -n 8192)")
	}
	for _, size := range []int{512, 1024, 4096, 16384} {
		b.Run(fmt.Sprintf("buf=%d", size), func(b *testing.B) {
			var fp Footprint
			for b.Loop() {
				fp = measureServer(b, Config{ReadBufferSize: size}, n)
			}
			b.ReportMetric(float64(fp.PerConn()), "B/conn")
			b.ReportMetric(float64(fp.Stacks), "stackB/conn")
			b.ReportMetric(float64(fp.Slab), "slabB/conn")
		})
	}
}

func measureServer(b *testing.B, cfg Config, n int) Footprint {
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	errc := startServe(s, l)
	fp, closeAll, err := MeasureConns(l.Addr().(*net.TCPAddr).Port, n)
	closeAll()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := s.Shutdown(ctx); serr != nil {
		b.Fatal(serr)
	}
	<-errc
	if err != nil {
		b.Fatal(err)
	}
	return fp
}

// BenchmarkEchoRoundTrip times one 64-byte echo over loopback.
func BenchmarkEchoRoundTrip(b *testing.B) {
	s, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	errc := startServe(s, l)
	defer func() { s.Shutdown(context.Background()); <-errc }()
	c, err := net.Dial("tcp", l.Addr().String())
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
}

// BenchmarkAcceptQueue shows what net.core.somaxconn caps: a listener that
// never calls Accept still completes handshakes until its accept queue is
// full, and the connects beyond that wait for a SYN retry. It dials 6,000
// connections (fewer if RLIMIT_NOFILE is low), each allowed 300 ms, and
// reports how many completed as queued.
func BenchmarkAcceptQueue(b *testing.B) {
	n := ConnBudget(6000)
	for b.Loop() {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		var (
			mu    sync.Mutex
			conns []net.Conn
			wg    sync.WaitGroup
		)
		sem := make(chan struct{}, 256)
		for range n {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				c, err := net.DialTimeout("tcp", l.Addr().String(), 300*time.Millisecond)
				if err == nil {
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(len(conns)), "queued")
		b.ReportMetric(float64(n), "dialled")
		for _, c := range conns {
			c.Close()
		}
		l.Close()
	}
}
