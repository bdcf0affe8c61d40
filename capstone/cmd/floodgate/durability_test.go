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
func TestDurability_SIGKILL(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "floodgate")
	build := exec.Command("go", "build", "-tags", "floodgate.solution", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	engines := []string{broker.EngineGoroutine}
	if runtime.GOOS == "linux" {
		engines = append(engines, broker.EngineEpoll)
	}
	for _, e := range engines {
		t.Run(e, func(t *testing.T) { durability(t, bin, filepath.Join(t.TempDir(), "floodgate.db"), e) })
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
