package broker

import (
	"io"
	"net"
	"testing"
	"testing/synctest"

	mqtt "floodgate/ch03-networking/03-mqtt"
)

// FuzzServeConn sends a valid CONNECT and then any bytes at all. Whatever
// they are, ServeConn must end cleanly when the peer goes away: no panic,
// no goroutine left, and the broker still closes.
func FuzzServeConn(f *testing.F) {
	sub, _ := (&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "a/#", QoS: 1}}}).AppendTo(nil, mqtt.V311)
	pub, _ := (&mqtt.Publish{QoS: 1, PacketID: 2, Retain: true, Topic: []byte("a/b"), Payload: []byte("x")}).AppendTo(nil, mqtt.V311)
	f.Add(sub)
	f.Add(append(sub, pub...))
	f.Add([]byte{0xC0, 0x00})       // PINGREQ
	f.Add([]byte{0x40, 0x02, 0, 9}) // PUBACK for an id never sent
	f.Add([]byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{0x82, 0x04, 0, 1, 0, 0}) // SUBSCRIBE with an empty filter
	connect, _ := (&mqtt.Connect{Version: mqtt.V311, ClientID: "fuzz",
		Will: &mqtt.Will{Topic: "a/will", Payload: []byte("w")}}).AppendTo(nil, mqtt.V311)
	f.Fuzz(func(t *testing.T, data []byte) {
		synctest.Test(t, func(t *testing.T) {
			b, err := New(Config{})
			if err != nil {
				t.Fatal(err)
			}
			srv, cli := net.Pipe()
			ended := make(chan struct{})
			go func() {
				b.ServeConn(srv)
				close(ended)
			}()
			go io.Copy(io.Discard, cli) // read whatever the broker answers
			cli.Write(connect)
			cli.Write(data)
			cli.Close()
			<-ended
			b.Close()
		})
	})
}
