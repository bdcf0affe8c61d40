package pools

import (
	"context"
	"net"
	"testing"
	"time"
)

// BenchmarkSink measures one request/response to a loopback sink, with a
// new TCP connection per request and with a ConnPool. The serial runs give
// the time per request; the parallel runs (8 goroutines per core) give the
// throughput, reported as req/s. Run with a fixed count, e.g.
// -benchtime=2000x: every dialled connection leaves a socket in TIME_WAIT.
func BenchmarkSink(b *testing.B) {
	addr, stop := startSink(b)
	defer stop()
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	perRequest := func() error {
		c, err := dial(context.Background())
		if err != nil {
			return err
		}
		defer c.Close()
		return roundTrip(c)
	}
	pool, err := NewConnPool(ConnConfig{Dial: dial, MaxOpen: 16, MaxIdle: 16})
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	pooled := func() error {
		c, err := pool.Get(context.Background())
		if err != nil {
			return err
		}
		err = roundTrip(c)
		pool.Put(c, err)
		return err
	}
	for _, c := range []struct {
		name string
		req  func() error
	}{{"dial-per-request", perRequest}, {"pooled", pooled}} {
		b.Run(c.name+"/serial", func(b *testing.B) {
			for b.Loop() {
				if err := c.req(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.SetParallelism(8)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.req(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}

func BenchmarkBufPool(b *testing.B) {
	var p BufPool
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			buf := p.Get(1500)
			(*buf)[0] = 1
			p.Put(buf)
		}
	})
}

func BenchmarkMakeBuffer(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			buf := make([]byte, 1500)
			buf[0] = 1
			sinkBuf = buf
		}
	})
}

var sinkBuf []byte
