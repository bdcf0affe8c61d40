//go:build floodgate.solution

package websocket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	ws "github.com/coder/websocket"
)

// offersMQTT reports whether the request offers the "mqtt" subprotocol in
// any of its Sec-WebSocket-Protocol headers. Each header holds a
// comma-separated list, and a client may send the header more than once.
func offersMQTT(h http.Header) bool {
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			if strings.TrimSpace(p) == Subprotocol {
				return true
			}
		}
	}
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
	if !offersMQTT(r.Header) {
		h.log.Debug("websocket: refused", "remote", r.RemoteAddr, "err", ErrNoMQTTSubprotocol)
		http.Error(w, ErrNoMQTTSubprotocol.Error(), http.StatusBadRequest)
		return
	}

	// Track the connection before upgrading it, so that Close either sees it
	// here or has already set closed.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	lc := &liveConn{cancel: cancel}
	if !h.track(lc) {
		http.Error(w, ErrClosed.Error(), http.StatusServiceUnavailable)
		return
	}
	defer h.untrack(lc)

	c, err := ws.Accept(w, r, &ws.AcceptOptions{
		Subprotocols:   []string{Subprotocol}, // selected, as the client offered it [MQTT-6.0.0-4]
		OriginPatterns: h.cfg.OriginPatterns,
	})
	if err != nil {
		// Accept has already written the HTTP error response.
		h.log.Debug("websocket: upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	// A WebSocket message boundary means nothing to MQTT: a packet may span
	// messages and a message may hold several packets [MQTT-6.0.0-2].
	// NetConn makes the messages one byte stream. A text message closes the
	// connection with status 1003 [MQTT-6.0.0-1]. NetConn lifts the read
	// limit, so set ours after it.
	conn := ws.NetConn(ctx, c, ws.MessageBinary)
	c.SetReadLimit(h.cfg.ReadLimit)
	defer conn.Close()

	h.serve(conn)
}

// track registers lc and counts it in h.wg, unless h is closed.
func (h *Handler) track(lc *liveConn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	h.conns[lc] = struct{}{}
	return true
}

// untrack forgets lc; ServeHTTP's last act.
func (h *Handler) untrack(lc *liveConn) {
	h.mu.Lock()
	delete(h.conns, lc)
	h.mu.Unlock()
	h.wg.Done()
}

// Active reports how many connections are being upgraded or served now.
func (h *Handler) Active() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// Close refuses new requests with HTTP 503, cancels every live connection
// (their reads and writes fail, so the callbacks return), and waits for
// every ServeHTTP call to return. It is safe to call more than once; it
// always returns nil.
func (h *Handler) Close() error {
	h.mu.Lock()
	h.closed = true
	live := make([]*liveConn, 0, len(h.conns))
	for lc := range h.conns {
		live = append(live, lc)
	}
	h.mu.Unlock()

	// Cancel outside the lock: cancelling runs the library's close code.
	for _, lc := range live {
		lc.cancel()
	}
	h.wg.Wait()
	return nil
}

// Serve serves MQTT over WebSocket on ln, at Config.Path, until ctx is
// cancelled. It then stops accepting, closes the Handler (and with it every
// WebSocket connection), waits for all of them and returns nil. If the
// listener fails first, Serve closes the connections it had accepted and
// the Handler, and returns the error. Serve always closes ln.
func (h *Handler) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle(h.cfg.Path, h)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: h.cfg.HandshakeTimeout,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		// The listener failed, but connections it accepted before are
		// still being served: close them too.
		_ = srv.Close()
		h.Close()
		return fmt.Errorf("websocket: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	// http.Server forgets a connection once it is hijacked for a WebSocket:
	// srv.Close stops the listener and plain HTTP connections, and h.Close
	// ends the WebSockets.
	err := srv.Close()
	h.Close()
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	if err != nil {
		return fmt.Errorf("websocket: serve %s: shut down: %w", ln.Addr(), err)
	}
	return nil
}
