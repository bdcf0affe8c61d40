//go:build floodgate.solution

package broker

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"floodgate/capstone/store"
	mqtt "floodgate/ch03-networking/03-mqtt"
)

// BenchmarkPersistQoS1 measures QoS 1 publish throughput with the bbolt
// store on (fsync at each commit, the default): 16 publishers, each with
// 16 QoS 1 PUBLISH in flight, to one persistent subscriber that
// acknowledges everything. Each message is two store changes (the
// subscriber's in-flight record, put when it is routed and deleted at its
// PUBACK), and the publisher's PUBACK waits for the first to be durable.
// It reports msg/s (publisher PUBACKs received per second) and commits/msg
// (store transactions, each with its fsync, per message).
func BenchmarkPersistQoS1(b *testing.B) {
	const publishers, window = 16, 16
	bolt, err := store.Open(filepath.Join(b.TempDir(), "floodgate.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer bolt.Close()
	st := &txCounter{Store: bolt}
	br, err := New(Config{Store: st, Engine: testEngine})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- br.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()
	addr := ln.Addr().String()

	sub := benchDial(b, addr, &mqtt.Connect{ClientID: "sub", KeepAlive: 0})
	defer sub.Close()
	benchSend(b, sub, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "bench/#", QoS: 1}}})
	if _, ok := benchRead(b, sub).(*mqtt.SubAck); !ok {
		b.Fatal("SUBACK expected")
	}
	var subWG sync.WaitGroup
	subWG.Add(1)
	go func() { // acknowledge every PUBLISH until the socket closes
		defer subWG.Done()
		r := mqtt.NewReader(sub.nc, mqtt.Config{Version: mqtt.V311})
		var buf []byte
		for {
			p, err := r.ReadPacket()
			if err != nil {
				return
			}
			if pub, ok := p.(*mqtt.Publish); ok {
				buf, _ = (&mqtt.PubAck{PacketID: pub.PacketID}).AppendTo(buf[:0], mqtt.V311)
				if _, err := sub.nc.Write(buf); err != nil {
					return
				}
			}
		}
	}()
	pubs := make([]*benchConn, publishers)
	for i := range pubs {
		pubs[i] = benchDial(b, addr, &mqtt.Connect{ClientID: fmt.Sprintf("pub%d", i), CleanStart: true})
		defer pubs[i].Close()
	}
	payload := make([]byte, 64)
	var left atomic.Int64
	left.Store(int64(b.N))
	txBefore := st.n.Load()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := mqtt.NewReader(c.nc, mqtt.Config{Version: mqtt.V311})
			var id uint16
			inflight := 0
			var buf []byte
			for {
				for inflight < window && left.Add(-1) >= 0 {
					id = id%65535 + 1
					buf, _ = (&mqtt.Publish{QoS: 1, PacketID: id, Topic: []byte("bench/x"), Payload: payload}).AppendTo(buf[:0], mqtt.V311)
					if _, err := c.nc.Write(buf); err != nil {
						b.Error(err)
						return
					}
					inflight++
				}
				if inflight == 0 {
					return
				}
				_ = c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
				p, err := r.ReadPacket()
				if err != nil {
					b.Error(err)
					return
				}
				if _, ok := p.(*mqtt.PubAck); ok {
					inflight--
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
	b.ReportMetric(float64(st.n.Load()-txBefore)/float64(b.N), "commits/msg")
	sub.Close()
	subWG.Wait()
}

// txCounter counts the store's write transactions: one per write method
// call, one per Apply.
type txCounter struct {
	store.Store
	n atomic.Int64
}

func (s *txCounter) SaveSession(x store.Session) error { s.n.Add(1); return s.Store.SaveSession(x) }
func (s *txCounter) DeleteSession(id string) error     { s.n.Add(1); return s.Store.DeleteSession(id) }
func (s *txCounter) SetRetained(m store.Message) error { s.n.Add(1); return s.Store.SetRetained(m) }
func (s *txCounter) PutInFlight(f store.InFlight) error {
	s.n.Add(1)
	return s.Store.PutInFlight(f)
}
func (s *txCounter) DeleteInFlight(id string, d store.Direction, p uint16) error {
	s.n.Add(1)
	return s.Store.DeleteInFlight(id, d, p)
}
func (s *txCounter) Apply(cs []store.Change) error { s.n.Add(1); return s.Store.Apply(cs) }

type benchConn struct{ nc net.Conn }

func (c *benchConn) Close() { c.nc.Close() }

func benchDial(b *testing.B, addr string, cp *mqtt.Connect) *benchConn {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	c := &benchConn{nc: nc}
	cp.Version = mqtt.V311
	benchSend(b, c, cp)
	if _, ok := benchRead(b, c).(*mqtt.Connack); !ok {
		b.Fatal("CONNACK expected")
	}
	return c
}

func benchSend(b *testing.B, c *benchConn, p mqtt.Packet) {
	buf, err := p.AppendTo(nil, mqtt.V311)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.nc.Write(buf); err != nil {
		b.Fatal(err)
	}
}

func benchRead(b *testing.B, c *benchConn) mqtt.Packet {
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	p, err := mqtt.NewReader(c.nc, mqtt.Config{Version: mqtt.V311}).ReadPacket()
	if err != nil {
		b.Fatal(err)
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	return p
}
