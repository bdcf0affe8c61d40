//go:build floodgate.solution

package main

import (
	"bufio"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"floodgate/capstone/broker"
	paho3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const wait = 10 * time.Second

// broker is a floodgate process started by a test.
type brokerProc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{} // closed when stdout has been drained
}

func startProc(t *testing.T, bin, db, engine string) *brokerProc {
	t.Helper()
	cmd := exec.Command(bin, "-tcp", "127.0.0.1:0", "-ws", "off", "-ops", "off", "-store", db, "-log-level", "warn",
		"-engine", engine)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &brokerProc{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "floodgate: MQTT over TCP on "); ok {
				addr <- a
			}
		}
	}()
	select {
	case p.addr = <-addr:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("the broker did not start")
	}
	return p
}

// stop ends the process with sig and waits for it.
func (p *brokerProc) stop(sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
	<-p.done
	_ = p.cmd.Wait()
}

func clientOpts(addr, id string, clean bool) *paho3.ClientOptions {
	return paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(wait).SetOrderMatters(true)
}

// TestDurability_SIGKILL kills the broker with SIGKILL while a publisher
// sends QoS 1 and QoS 2 messages to an offline persistent subscriber, starts
// it again on the same store, and requires that every message the broker
// acknowledged (PUBACK or PUBCOMP) reaches the subscriber. It runs with each
// connection engine.
func TestDurability_SIGKILL(t *testing.T) { eachEngine(t, durability) }

// eachEngine builds the broker and runs f once per connection engine, each
// with a store file of its own.
func eachEngine(t *testing.T, f func(t *testing.T, bin, db, engine string)) {
	bin := filepath.Join(t.TempDir(), "floodgate")
	build := exec.Command("go", "build", "-tags", "floodgate.solution", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	engines := []string{broker.EngineGoroutine}
	if runtime.GOOS == "linux" {
		engines = append(engines, broker.EngineEpoll)
	}
	for _, e := range engines {
		t.Run(e, func(t *testing.T) { f(t, bin, filepath.Join(t.TempDir(), "floodgate.db"), e) })
	}
}

func durability(t *testing.T, bin, db, engine string) {
	p := startProc(t, bin, db, engine)
	sub := paho3.NewClient(clientOpts(p.addr, "sub", false))
	tok := sub.Connect()
	require.True(t, tok.WaitTimeout(wait) && tok.Error() == nil, "subscriber CONNECT: %v", tok.Error())
	tok = sub.Subscribe("d/#", 1, nil)
	require.True(t, tok.WaitTimeout(wait) && tok.Error() == nil, "SUBSCRIBE: %v", tok.Error())
	sub.Disconnect(0) // offline: messages wait for it in the broker

	pub := paho3.NewClient(clientOpts(p.addr, "pub", true))
	tok = pub.Connect()
	require.True(t, tok.WaitTimeout(wait) && tok.Error() == nil, "publisher CONNECT: %v", tok.Error())
	var mu sync.Mutex
	var acked []string
	enough := make(chan struct{})
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := 0; ; i++ {
			payload := fmt.Sprintf("m-%d", i)
			tok := pub.Publish("d/x", byte(1+i%2), false, payload)
			if !tok.WaitTimeout(wait) || tok.Error() != nil {
				return // the broker is gone
			}
			mu.Lock()
			acked = append(acked, payload)
			if len(acked) == 100 {
				close(enough)
			}
			mu.Unlock()
			if i > 900 {
				return
			}
		}
	}()
	select {
	case <-enough:
	case <-time.After(wait):
		t.Fatal("the publisher did not get 100 acknowledgements")
	}
	p.stop(syscall.SIGKILL) // in the middle of the traffic
	<-published
	pub.Disconnect(0)
	mu.Lock()
	want := append([]string(nil), acked...)
	mu.Unlock()

	p = startProc(t, bin, db, engine)
	defer p.stop(syscall.SIGTERM)
	got := make(chan string, 2000)
	opts := clientOpts(p.addr, "sub", false).SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) {
		got <- string(m.Payload())
	})
	sub = paho3.NewClient(opts)
	tok = sub.Connect()
	require.True(t, tok.WaitTimeout(wait) && tok.Error() == nil, "subscriber reconnect: %v", tok.Error())
	defer sub.Disconnect(0)
	seen := make(map[string]bool)
	missing := func() int {
		n := 0
		for _, w := range want {
			if !seen[w] {
				n++
			}
		}
		return n
	}
	deadline := time.After(wait)
	for missing() > 0 {
		select {
		case m := <-got:
			seen[m] = true
		case <-deadline:
			t.Fatalf("%d of %d acknowledged messages were lost", missing(), len(want))
		}
	}
	t.Logf("%d messages acknowledged before SIGKILL, all delivered after the restart (%d received)", len(want), len(seen))
	assert.Zero(t, missing())
}

// TestDurability_SIGKILL_QoS2Retained is TestDurability_SIGKILL with the
// other stored state: a persistent publisher (its inbound QoS 2 ids are
// written) alternates QoS 2 messages and retained QoS 1 messages, each on
// a topic of its own, to an offline subscriber that subscribed at QoS 2.
// After SIGKILL and a restart, every acknowledged message (PUBCOMP or
// PUBACK) reaches the subscriber, each QoS 2 one exactly once, and every
// acknowledged retained message is still retained.
func TestDurability_SIGKILL_QoS2Retained(t *testing.T) { eachEngine(t, durabilityQoS2Retained) }

func durabilityQoS2Retained(t *testing.T, bin, db, engine string) {
	p := startProc(t, bin, db, engine)
	sub := paho3.NewClient(clientOpts(p.addr, "sub", false))
	tok := sub.Connect()
	require.True(t, tok.WaitTimeout(wait) && tok.Error() == nil, "subscriber CONNECT: %v", tok.Error())
	tok = sub.Subscribe("d/#", 2, nil)
	require.True(t, tok.WaitTimeout(wait) && tok.Error() == nil, "SUBSCRIBE: %v", tok.Error())
	sub.Disconnect(0)

	pub := paho3.NewClient(clientOpts(p.addr, "pub", false))
	tok = pub.Connect()
	require.True(t, tok.WaitTimeout(wait) && tok.Error() == nil, "publisher CONNECT: %v", tok.Error())
	var mu sync.Mutex
	var ackedQoS2, ackedRetained []string
	enough := make(chan struct{})
	killed := make(chan struct{}) // closed after SIGKILL
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := 0; i <= 900; i++ {
			payload := fmt.Sprintf("m-%d", i)
			retained := i%2 == 1
			var tok paho3.Token
			if retained {
				tok = pub.Publish(fmt.Sprintf("d/r/%d", i), 1, true, payload)
			} else {
				tok = pub.Publish("d/x", 2, false, payload)
			}
			// A persistent session's client keeps an unacknowledged
			// message for its next connection: its token does not fail
			// when the broker dies.
			select {
			case <-tok.Done():
			case <-killed:
				select {
				case <-tok.Done(): // acknowledged just before
				default:
					return
				}
			case <-time.After(wait):
				return
			}
			if tok.Error() != nil {
				return // the broker is gone
			}
			mu.Lock()
			if retained {
				ackedRetained = append(ackedRetained, payload)
			} else {
				ackedQoS2 = append(ackedQoS2, payload)
			}
			if len(ackedQoS2)+len(ackedRetained) == 100 {
				close(enough)
			}
			mu.Unlock()
		}
	}()
	select {
	case <-enough:
	case <-time.After(wait):
		t.Fatal("the publisher did not get 100 acknowledgements")
	}
	p.stop(syscall.SIGKILL)
	close(killed)
	<-published
	pub.Disconnect(0)
	mu.Lock()
	wantQoS2 := append([]string(nil), ackedQoS2...)
	wantRetained := append([]string(nil), ackedRetained...)
	mu.Unlock()

	p = startProc(t, bin, db, engine)
	defer p.stop(syscall.SIGTERM)
	got := make(chan string, 2000)
	opts := clientOpts(p.addr, "sub", false).SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) {
		got <- string(m.Payload())
	})
	sub = paho3.NewClient(opts)
	tok = sub.Connect()
	require.True(t, tok.WaitTimeout(wait) && tok.Error() == nil, "subscriber reconnect: %v", tok.Error())
	defer sub.Disconnect(0)
	seen := make(map[string]int)
	missing := func() int {
		n := 0
		for _, w := range append(append([]string(nil), wantQoS2...), wantRetained...) {
			if seen[w] == 0 {
				n++
			}
		}
		return n
	}
	deadline := time.After(wait)
	for missing() > 0 {
		select {
		case m := <-got:
			seen[m]++
		case <-deadline:
			t.Fatalf("%d of %d acknowledged messages were lost", missing(), len(wantQoS2)+len(wantRetained))
		}
	}
	for _, w := range wantQoS2 {
		assert.Equal(t, 1, seen[w], "QoS 2 message %s delivered once", w)
	}

	retained := make(chan string, 2000)
	opts = clientOpts(p.addr, "reader", true).SetDefaultPublishHandler(func(_ paho3.Client, m paho3.Message) {
		if m.Retained() {
			retained <- string(m.Payload())
		}
	})
	reader := paho3.NewClient(opts)
	tok = reader.Connect()
	require.True(t, tok.WaitTimeout(wait) && tok.Error() == nil, "reader CONNECT: %v", tok.Error())
	defer reader.Disconnect(0)
	tok = reader.Subscribe("d/r/#", 1, nil)
	require.True(t, tok.WaitTimeout(wait) && tok.Error() == nil, "reader SUBSCRIBE: %v", tok.Error())
	kept := make(map[string]bool)
	deadline = time.After(wait)
	for _, w := range wantRetained {
		for !kept[w] {
			select {
			case m := <-retained:
				kept[m] = true
			case <-deadline:
				t.Fatalf("acknowledged retained message %s is not retained after the restart", w)
			}
		}
	}
	t.Logf("%d QoS 2 and %d retained messages acknowledged before SIGKILL, all delivered after the restart",
		len(wantQoS2), len(wantRetained))
}
