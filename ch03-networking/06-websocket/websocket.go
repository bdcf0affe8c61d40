//go:build !floodgate.solution

package websocket

import (
	"context"
	"errors"
	"net"
	"net/http"
)

// offersMQTT reports whether the request offers the "mqtt" subprotocol in
// any of its Sec-WebSocket-Protocol headers. Each header holds a
// comma-separated list, and a client may send the header more than once.
func offersMQTT(h http.Header) bool {
	// TODO(Task 1): look through h.Values("Sec-WebSocket-Protocol"),
	// splitting each value at commas and trimming spaces.
	return false
}

// ServeHTTP upgrades the request to a WebSocket speaking the "mqtt"
// subprotocol and calls the serve callback with it as a net.Conn, whose
// Reads and Writes are the bytes of binary messages [MQTT-6.0.0-1]. It
// returns when the callback returns, after closing the connection.
//
// A request that does not offer "mqtt" gets HTTP 400 with
// ErrNoMQTTSubprotocol's text; after Close, requests get HTTP 503. A
// request that is not a valid WebSocket handshake gets the error the
// WebSocket library writes (for example 426 Upgrade Required).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// TODO(Task 1): refuse a request that does not offer "mqtt" (400), and
	// upgrade the others with ws.Accept, selecting the "mqtt" subprotocol.
	//
	// TODO(Task 2): adapt the WebSocket to a net.Conn of binary messages
	// (ws.NetConn), set the read limit, call h.serve, close the connection.
	//
	// TODO(Task 3): before upgrading, track the connection (h.track) so
	// that Close can cancel it and wait for it; refuse with 503 once closed.
	http.Error(w, "websocket: not implemented yet", http.StatusNotImplemented)
}

// track registers lc and counts it in h.wg, unless h is closed.
func (h *Handler) track(lc *liveConn) bool {
	// TODO(Task 3): under h.mu: refuse if closed, else h.wg.Add(1) and add
	// lc to h.conns.
	return false
}

// untrack forgets lc; ServeHTTP's last act.
func (h *Handler) untrack(lc *liveConn) {
	// TODO(Task 3): remove lc from h.conns under h.mu, then h.wg.Done().
}

// Active reports how many connections are being upgraded or served now.
func (h *Handler) Active() int {
	// TODO(Task 3): len(h.conns), under h.mu.
	return 0
}

// Close refuses new requests with HTTP 503, cancels every live connection
// (their reads and writes fail, so the callbacks return), and waits for
// every ServeHTTP call to return. It is safe to call more than once; it
// always returns nil.
func (h *Handler) Close() error {
	// TODO(Task 3): set closed, cancel every tracked connection outside the
	// lock, then wait for h.wg.
	return nil
}

// Serve serves MQTT over WebSocket on ln, at Config.Path, until ctx is
// cancelled. It then stops accepting, closes the Handler (and with it every
// WebSocket connection), waits for all of them and returns nil. If the
// listener fails first, Serve closes the connections it had accepted and
// the Handler, and returns the error. Serve always closes ln.
func (h *Handler) Serve(ctx context.Context, ln net.Listener) error {
	// TODO(Task 4): run an http.Server with a mux holding h at h.cfg.Path,
	// in a goroutine you wait for; on ctx.Done, srv.Close() then h.Close().
	ln.Close()
	return errors.New("websocket: Serve not implemented yet")
}
