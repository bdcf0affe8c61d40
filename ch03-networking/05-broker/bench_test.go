package broker

import (
	"fmt"
	"net"
	"testing"

	mqtt "floodgate/ch03-networking/03-mqtt"
)

// BenchmarkFanOut publishes one QoS 0 message to a topic that n subscribers
// follow, over loopback TCP, and waits until every subscriber has read it.
// deliveries/s is the figure to read.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			br, err := New(Config{})
			if err != nil {
				b.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- br.Serve(ln) }()
			defer func() { br.Close(); <-served }()

			dial := func(id string) (net.Conn, *mqtt.Reader) {
				nc, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				buf, _ := (&mqtt.Connect{Version: mqtt.V311, ClientID: id, CleanStart: true}).AppendTo(nil, mqtt.V311)
				nc.Write(buf)
				r := mqtt.NewReader(nc, mqtt.Config{Version: mqtt.V311})
				if _, err := r.ReadPacket(); err != nil { // CONNACK
					b.Fatal(err)
				}
				return nc, r
			}
			got := make(chan error, n)
			for i := range n {
				nc, r := dial(fmt.Sprint("sub", i))
				defer nc.Close()
				buf, _ := (&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "bench/+"}}}).AppendTo(nil, mqtt.V311)
				nc.Write(buf)
				if _, err := r.ReadPacket(); err != nil { // SUBACK
					b.Fatal(err)
				}
				go func() {
					var p mqtt.Publish
					for {
						h, body, err := r.Next()
						if err == nil {
							err = p.Decode(h, body, mqtt.V311)
						}
						got <- err
						if err != nil {
							return
						}
					}
				}()
			}
			pub, _ := dial("pub")
			defer pub.Close()
			msg, _ := (&mqtt.Publish{Topic: []byte("bench/x"), Payload: make([]byte, 64)}).AppendTo(nil, mqtt.V311)
			for b.Loop() {
				if _, err := pub.Write(msg); err != nil {
					b.Fatal(err)
				}
				for range n {
					if err := <-got; err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
