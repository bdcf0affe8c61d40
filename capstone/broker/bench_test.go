//go:build floodgate.solution

package broker

import (
	"context"
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"floodgate/capstone/session"
	mqtt "floodgate/ch03-networking/03-mqtt"
)

// benchBroker serves a broker on 127.0.0.1:0 for a benchmark.
func benchBroker(b *testing.B, cfg Config) string {
	b.Helper()
	if cfg.SysInterval == 0 {
		cfg.SysInterval = -1
	}
	if cfg.Engine == "" {
		cfg.Engine = testEngine
	}
	br, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	addr, _ := serveUntilB(b, br)
	return addr
}

func serveUntilB(b *testing.B, br *Broker) (string, func()) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = br.Serve(ctx, ln) }()
	stop := func() { cancel(); <-done }
	b.Cleanup(stop)
	return ln.Addr().String(), stop
}

// rawConnect dials and completes a CONNECT/CONNACK with plain bytes.
func rawConnect(b *testing.B, addr string, cp *mqtt.Connect) (net.Conn, *mqtt.Reader) {
	b.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	if cp.Version == 0 {
		cp.Version = mqtt.V311
	}
	buf, _ := cp.AppendTo(nil, cp.Version)
	if _, err := nc.Write(buf); err != nil {
		b.Fatal(err)
	}
	r := mqtt.NewReader(nc, mqtt.Config{Version: cp.Version})
	if _, err := r.ReadPacket(); err != nil {
		b.Fatal(err)
	}
	return nc, r
}

// BenchmarkFanIn1to1QoS0: one publisher, one subscriber, QoS 0, 64-byte
// payloads; reports messages per second through the broker. The publisher
// keeps at most about 1,000 messages ahead of the subscriber: an unpaced QoS 0
// flood makes the subscriber a slow consumer, and the broker cuts it off
// (with the default MaxQueued of 1,000 packets even a burst of about 1,000
// can: this benchmark raises it to 4,096 to measure throughput, not the
// policy).
func BenchmarkFanIn1to1QoS0(b *testing.B) {
	addr := benchBroker(b, Config{Session: session.Config{MaxQueued: 4096}})
	sub, sr := rawConnect(b, addr, &mqtt.Connect{ClientID: "sub", CleanStart: true})
	defer sub.Close()
	s, _ := (&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "bench/#"}}}).AppendTo(nil, mqtt.V311)
	_, _ = sub.Write(s)
	if _, err := sr.ReadPacket(); err != nil {
		b.Fatal(err)
	}
	pub, _ := rawConnect(b, addr, &mqtt.Connect{ClientID: "pub", CleanStart: true})
	defer pub.Close()
	msg, _ := (&mqtt.Publish{Topic: []byte("bench/x"), Payload: make([]byte, 64)}).AppendTo(nil, mqtt.V311)
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	errc := make(chan error, 1)
	progress := make(chan struct{}, b.N/512+2)
	go func() {
		var p mqtt.Publish
		for i := range b.N {
			if i%512 == 0 {
				progress <- struct{}{}
			}
			h, body, err := sr.Next()
			if err == nil {
				err = p.Decode(h, body, mqtt.V311)
			}
			if err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	batch := make([]byte, 0, 64*len(msg))
	received := 0 // in units of 512 messages, as the subscriber reports
	for i := 0; i < b.N; {
		for i-received*512 >= 512 {
			select {
			case <-progress:
				received++
			case err := <-errc:
				b.Fatal("the subscriber stopped: ", err)
			}
		}
		batch = batch[:0]
		for j := 0; j < 64 && i < b.N; j, i = j+1, i+1 {
			batch = append(batch, msg...)
		}
		if _, err := pub.Write(batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkQoS1RoundTrip: one QoS 1 PUBLISH to a subscriber and its PUBACK
// back to the publisher, one at a time.
func BenchmarkQoS1RoundTrip(b *testing.B) {
	addr := benchBroker(b, Config{})
	sub, sr := rawConnect(b, addr, &mqtt.Connect{ClientID: "sub", CleanStart: true})
	defer sub.Close()
	s, _ := (&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "bench/#", QoS: 1}}}).AppendTo(nil, mqtt.V311)
	_, _ = sub.Write(s)
	if _, err := sr.ReadPacket(); err != nil {
		b.Fatal(err)
	}
	go func() { // the subscriber acknowledges everything
		for {
			p, err := sr.ReadPacket()
			if err != nil {
				return
			}
			if p, ok := p.(*mqtt.Publish); ok {
				ack, _ := (&mqtt.PubAck{PacketID: p.PacketID}).AppendTo(nil, mqtt.V311)
				if _, err := sub.Write(ack); err != nil {
					return
				}
			}
		}
	}()
	pub, pr := rawConnect(b, addr, &mqtt.Connect{ClientID: "pub", CleanStart: true})
	defer pub.Close()
	b.ResetTimer()
	for i := range b.N {
		msg, _ := (&mqtt.Publish{QoS: 1, PacketID: uint16(i%65535 + 1), Topic: []byte("bench/x"), Payload: make([]byte, 64)}).AppendTo(nil, mqtt.V311)
		if _, err := pub.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := pr.ReadPacket(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIdleConnectionMemory opens 1,000 idle MQTT connections to one
// broker (on the engine under test) and reports the Go heap and stacks they add, per connection. Both
// ends are in this process, so the figure includes the client side's
// sockets (a few hundred bytes each): an upper bound for the broker.
func BenchmarkIdleConnectionMemory(b *testing.B) {
	const n = 1000
	br, err := New(Config{SysInterval: -1, Engine: testEngine})
	if err != nil {
		b.Fatal(err)
	}
	addr, _ := serveUntilB(b, br)
	for range b.N {
		b.StopTimer()
		before := memInUse()
		b.StartTimer()
		conns := make([]net.Conn, 0, n)
		for i := range n {
			nc, _ := rawConnect(b, addr, &mqtt.Connect{ClientID: "idle-" + strconv.Itoa(i), CleanStart: true})
			conns = append(conns, nc)
		}
		b.StopTimer()
		b.ReportMetric(float64(memInUse()-before)/n, "bytes/conn")
		for _, c := range conns {
			c.Close()
		}
		for br.adm.Open() > 0 { // let the broker's side finish
			time.Sleep(time.Millisecond)
		}
		b.StartTimer()
	}
}

func memInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.StackInuse)
}

// BenchmarkIdleSubscribed holds 2,000 idle subscribed MQTT 3.1.1
// connections (keepalive 60 s, one subscription each) on one broker run by
// the engine under test (TestMain runs the package once per engine; the
// sub-benchmark is named after it) and reports the Go heap and stacks they
// add, per connection, and the goroutines. Both ends are in this process,
// so the figure includes the client side's sockets (a net.Conn each, no
// goroutine: nothing reads them): compare the engines, the client side is
// the same for both.
func BenchmarkIdleSubscribed(b *testing.B) {
	name := testEngine
	if name == "" {
		name = EngineGoroutine
	}
	b.Run(name, func(b *testing.B) {
		const n = 2000
		br, err := New(Config{SysInterval: -1, Engine: testEngine})
		if err != nil {
			b.Fatal(err)
		}
		addr, _ := serveUntilB(b, br)
		sub := func(nc net.Conn, r *mqtt.Reader, i int) {
			s, _ := (&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "idle/" + strconv.Itoa(i), QoS: 1}}}).AppendTo(nil, mqtt.V311)
			if _, err := nc.Write(s); err != nil {
				b.Fatal(err)
			}
			if _, err := r.ReadPacket(); err != nil {
				b.Fatal(err)
			}
		}
		for range b.N {
			b.StopTimer()
			before, g0 := memInUse(), runtime.NumGoroutine()
			b.StartTimer()
			conns := make([]net.Conn, 0, n)
			for i := range n {
				nc, r := rawConnect(b, addr, &mqtt.Connect{ClientID: "idle-" + strconv.Itoa(i), CleanStart: true, KeepAlive: 60})
				sub(nc, r, i)
				conns = append(conns, nc)
			}
			b.StopTimer()
			b.ReportMetric(float64(memInUse()-before)/n, "bytes/conn")
			b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/conn")
			for _, c := range conns {
				c.Close()
			}
			for br.adm.Open() > 0 { // let the broker's side finish
				time.Sleep(time.Millisecond)
			}
			b.StartTimer()
		}
	})
}
