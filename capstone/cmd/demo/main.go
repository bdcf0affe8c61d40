// Command demo is a small paho client session against a running Floodgate
// broker (make capstone), so the capstone README's first run can be
// repeated: an MQTT 5.0 subscriber over TCP, one publication with MQTT
// 3.1.1 over WebSocket (paho.mqtt.golang) and one with MQTT 5.0 at QoS 2
// with a user property (paho.golang), each printed as the subscriber gets
// it. It then waits, for at most -wait, for the broker to end the
// subscriber's connection (stop the broker with Ctrl-C to see its
// DISCONNECT), and exits.
//
//	go run ./capstone/cmd/demo -tcp 127.0.0.1:1883 -ws 127.0.0.1:8083
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	tcp := flag.String("tcp", "127.0.0.1:1883", "the broker's MQTT over TCP address")
	ws := flag.String("ws", "127.0.0.1:8083", "the broker's MQTT over WebSocket address (path /mqtt)")
	wait := flag.Duration("wait", 30*time.Second, "how long to wait for the broker's DISCONNECT after the messages")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", *tcp)
	if err != nil {
		return err
	}
	got := make(chan *paho.Publish, 2)
	gone := make(chan *paho.Disconnect, 1)
	sub := paho.NewClient(paho.ClientConfig{
		Conn: nc,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			got <- pr.Packet
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) { gone <- d },
	})
	ack, err := sub.Connect(ctx, &paho.Connect{ClientID: "demo-sub", CleanStart: true, KeepAlive: 60})
	if err != nil {
		return fmt.Errorf("5.0 connect: %w", err)
	}
	defer func() {
		_ = sub.Disconnect(&paho.Disconnect{})
		<-sub.Done()
	}()
	fmt.Printf("5.0 CONNACK: reason %d, receive maximum %d, maximum packet size %d\n",
		ack.ReasonCode, deref(ack.Properties.ReceiveMaximum), deref(ack.Properties.MaximumPacketSize))
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "demo/#", QoS: 2}}}); err != nil {
		return fmt.Errorf("5.0 subscribe: %w", err)
	}

	// MQTT 3.1.1 over WebSocket.
	opts := paho3.NewClientOptions().AddBroker("ws://" + *ws + "/mqtt").SetClientID("demo-ws").
		SetProtocolVersion(4).SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	c3 := paho3.NewClient(opts)
	if t := c3.Connect(); !t.WaitTimeout(5*time.Second) || t.Error() != nil {
		return fmt.Errorf("3.1.1 over WebSocket: connect: %v", errOr(t.Error(), "timed out"))
	}
	t := c3.Publish("demo/ws", 1, false, "hello from 3.1.1 over WebSocket")
	ok := t.WaitTimeout(5 * time.Second)
	c3.Disconnect(250)
	if !ok || t.Error() != nil {
		return fmt.Errorf("3.1.1 over WebSocket: publish: %v", errOr(t.Error(), "timed out"))
	}
	if err := show(ctx, got); err != nil {
		return err
	}

	// MQTT 5.0 over TCP, QoS 2, with a user property, from the subscriber.
	if _, err := sub.Publish(ctx, &paho.Publish{Topic: "demo/tcp", QoS: 2, Payload: []byte("hello from 5.0"),
		Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: "k", Value: "v"}}}}); err != nil {
		return fmt.Errorf("5.0 publish: %w", err)
	}
	if err := show(ctx, got); err != nil {
		return err
	}

	fmt.Printf("waiting up to %v for the broker to stop (Ctrl-C it)...\n", *wait)
	var d *paho.Disconnect
	select {
	case d = <-gone:
	case <-sub.Done():
		// paho may end the connection before it calls OnServerDisconnect.
		select {
		case d = <-gone:
		case <-time.After(time.Second):
		}
	case <-time.After(*wait):
		fmt.Println("5.0 subscriber: still connected; leaving")
		return nil
	}
	if d == nil {
		fmt.Println("5.0 subscriber: the connection ended without a DISCONNECT")
	} else {
		fmt.Printf("5.0 subscriber: the broker sent DISCONNECT 0x%02X\n", d.ReasonCode)
	}
	return nil
}

// show prints the next message the subscriber gets.
func show(ctx context.Context, got <-chan *paho.Publish) error {
	select {
	case p := <-got:
		var user []paho.UserProperty
		if p.Properties != nil {
			user = p.Properties.User
		}
		fmt.Printf("5.0 subscriber got %q on %s (QoS %d, user properties %v)\n", p.Payload, p.Topic, p.QoS, user)
		return nil
	case <-ctx.Done():
		return errors.New("no message arrived in time")
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}
