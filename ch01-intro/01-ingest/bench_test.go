package ingest

import (
	"bufio"
	"context"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkParseLine measures the parser alone: one line per op.
func BenchmarkParseLine(b *testing.B) {
	line := []byte("plant-7:boiler-2,pressure,1013.25,1700000000123")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseLine(line); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIngestLoopback sends lines from 8 loopback clients to one server
// and reports lines per second end to end.
func BenchmarkIngestLoopback(b *testing.B) {
	var got atomic.Int64
	done := make(chan struct{})
	target := int64(b.N)
	s, err := New(Config{Handle: func(Reading) {
		if got.Add(1) == target {
			close(done)
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Shutdown(context.Background())

	const clients = 8
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := range clients {
		n := b.N / clients
		if i == 0 {
			n += b.N % clients
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			w := bufio.NewWriter(c)
			line := []byte("dev-" + strconv.Itoa(i) + ",temp,21.5\n")
			for range n {
				w.Write(line)
			}
			w.Flush()
			<-done
		}()
	}
	<-done
	b.StopTimer()
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkIdleConnections holds 4,000 idle loopback connections (8,000
// descriptors in this process, client and server ends) and reports the
// memory the server side costs per connection: heap plus goroutine stacks.
func BenchmarkIdleConnections(b *testing.B) {
	const conns = 4000
	for b.Loop() {
		s, err := New(Config{})
		if err != nil {
			b.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go s.Serve(ln)
		clients := make([]net.Conn, 0, conns)
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		for range conns {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			clients = append(clients, c)
		}
		for s.Stats().Active < conns {
			runtime.Gosched()
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		perConn := float64((m1.HeapInuse+m1.StackInuse)-(m0.HeapInuse+m0.StackInuse)) / conns
		b.ReportMetric(perConn, "B/conn")
		s.Shutdown(context.Background())
		for _, c := range clients {
			c.Close()
		}
	}
}
