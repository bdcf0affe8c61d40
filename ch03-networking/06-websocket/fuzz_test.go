package websocket

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzOffersMQTT feeds offersMQTT arbitrary Sec-WebSocket-Protocol headers,
// the only bytes from the network this package parses itself (the
// handshake and the framing are the library's). It must never panic, and
// it may say yes only when some comma-separated token is exactly "mqtt".
func FuzzOffersMQTT(f *testing.F) {
	for _, seed := range [][2]string{
		{"mqtt", ""}, {"wamp, mqtt", ""}, {"mqttv3.1", "x"}, {" , ,", "mqtt "}, {"MQTT", "mqtt5"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		h := http.Header{}
		h.Add("Sec-WebSocket-Protocol", a)
		h.Add("Sec-WebSocket-Protocol", b)
		got := offersMQTT(h)
		want := false
		for _, v := range []string{a, b} {
			for _, p := range strings.Split(v, ",") {
				if strings.TrimSpace(p) == Subprotocol {
					want = true
				}
			}
		}
		if got && !want {
			t.Fatalf("offersMQTT(%q, %q) = true, but no token is %q", a, b, Subprotocol)
		}
	})
}
