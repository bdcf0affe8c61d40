package websocket

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	ws "github.com/coder/websocket"
)

// A QoS 0 PUBLISH of a 19-byte reading to "s/dev-1/t": what a sensor sends.
// Remaining length 30: topic length (2) + topic (9) + payload (19).
var benchPublish = append([]byte{0x30, 30, 0, 9, 's', '/', 'd', 'e', 'v', '-', '1', '/', 't'},
	[]byte(`{"t":21.5,"h":40.1}`)...)

// BenchmarkRoundTrip compares one request and its answer, client to server
// and back, on loopback:
//
//   - websocket: an MQTT PUBLISH over a WebSocket held open, echoed by the
//     test responder behind a Handler;
//   - http-keepalive: the same bytes POSTed and echoed, on a kept-alive
//     HTTP/1.1 connection, which is what a well-written poller does;
//   - http-new-conn: the same, with a new TCP connection per request, which
//     is what many device HTTP stacks do.
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("websocket", func(b *testing.B) {
		h, err := New(Config{}, func(c net.Conn) { _ = respond(c) })
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(h)
		defer srv.Close()
		defer h.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &ws.DialOptions{Subprotocols: []string{Subprotocol}})
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseNow()
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Write(ctx, ws.MessageBinary, benchPublish); err != nil {
				b.Fatal(err)
			}
			if _, msg, err := c.Read(ctx); err != nil || len(msg) != len(benchPublish) {
				b.Fatalf("read %d bytes: %v", len(msg), err)
			}
		}
	})
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(w, r.Body) })
	for _, keepAlive := range []bool{true, false} {
		name := "http-keepalive"
		if !keepAlive {
			name = "http-new-conn"
		}
		b.Run(name, func(b *testing.B) {
			srv := httptest.NewServer(echo)
			defer srv.Close()
			tr := &http.Transport{DisableKeepAlives: !keepAlive}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Post(srv.URL, "application/octet-stream", bytes.NewReader(benchPublish))
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || n != int64(len(benchPublish)) {
					b.Fatalf("read %d bytes: %v", n, err)
				}
			}
		})
	}
}

// BenchmarkDelivery times what the article's claim is about: the server
// has a command for a device; how long until the device has it? One op is
// one command, from the moment the server has it to the moment the client
// has read it.
//
//   - websocket-push: the server writes it to the open WebSocket;
//   - http-long-poll: the client always has a GET waiting, which the server
//     answers when the command arrives;
//   - http-poll-10ms: the client asks every 10 ms and the server answers 204
//     No Content until there is a command.
//
// Read ns/delivery: for polling, ns/op also holds the random wait that
// places each command at a random moment of the poll period.
func BenchmarkDelivery(b *testing.B) {
	cmd := []byte(`{"valve":"open"}`)

	b.Run("websocket-push", func(b *testing.B) {
		commands := make(chan []byte)
		h, err := New(Config{}, func(c net.Conn) {
			for m := range commands {
				if _, err := c.Write(m); err != nil {
					return
				}
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(h)
		defer srv.Close()
		defer h.Close()
		defer close(commands)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &ws.DialOptions{Subprotocols: []string{Subprotocol}})
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseNow()
		var total time.Duration
		for b.Loop() {
			start := time.Now()
			commands <- cmd
			if _, _, err := c.Read(ctx); err != nil {
				b.Fatal(err)
			}
			total += time.Since(start)
		}
		b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/delivery")
	})

	b.Run("http-long-poll", func(b *testing.B) {
		commands := make(chan []byte)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case m := <-commands:
				_, _ = w.Write(m)
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		benchPoller(b, &http.Client{Transport: tr}, srv.URL, 0, func() { commands <- cmd })
	})

	b.Run("http-poll-10ms", func(b *testing.B) {
		var mu sync.Mutex // guards pending
		var pending []byte
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			m := pending
			pending = nil
			mu.Unlock()
			if m == nil {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			_, _ = w.Write(m)
		}))
		defer srv.Close()
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		benchPoller(b, &http.Client{Transport: tr}, srv.URL, 10*time.Millisecond, func() {
			mu.Lock()
			pending = cmd
			mu.Unlock()
		})
	})
}

// benchPoller runs a polling client in a goroutine it stops before
// returning: with interval 0, a GET back to back (long polling); otherwise a
// GET on every tick of a ticker. Each op publishes one command at a random
// moment of the poll period, so that the command waits half a period on
// average, as it would in the field, and times publish-to-receipt, which it
// reports as ns/delivery.
func benchPoller(b *testing.B, client *http.Client, url string, interval time.Duration, publish func()) {
	got := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var tick <-chan time.Time
		if interval > 0 {
			t := time.NewTicker(interval)
			defer t.Stop()
			tick = t.C
		}
		for ctx.Err() == nil {
			if tick != nil {
				select {
				case <-tick:
				case <-ctx.Done():
					return
				}
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := client.Do(req)
			if err != nil {
				continue // cancelled; the loop condition ends it
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if n > 0 {
				select {
				case got <- struct{}{}:
				case <-ctx.Done():
				}
			}
		}
	}()
	defer wg.Wait()
	defer cancel()
	var total time.Duration
	for b.Loop() {
		if interval > 0 {
			time.Sleep(rand.N(interval)) // a random phase, not synchronisation
		}
		start := time.Now()
		publish()
		<-got
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/delivery")
}
