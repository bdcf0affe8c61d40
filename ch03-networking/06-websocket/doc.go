// Package websocket carries MQTT over WebSocket, for the devices and browser
// dashboards that can only speak HTTP: an http.Handler that upgrades a
// request offering the "mqtt" subprotocol, turns the WebSocket into a
// net.Conn of binary messages, and hands it to the same func(net.Conn) that
// serves plain TCP connections, so the broker never knows the difference.
//
// The WebSocket library is github.com/coder/websocket, imported here as ws.
//
// A Handler is safe for concurrent use. It starts no goroutine of its own
// for a connection: each callback runs on the goroutine net/http started for
// the request, and Close waits for every one of them to return.
package websocket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// Subprotocol is the WebSocket subprotocol MQTT uses. A client must offer it
// [MQTT-6.0.0-3] and the server must select it [MQTT-6.0.0-4].
const Subprotocol = "mqtt"

// Errors reported by a Handler. ServeHTTP sends their text to a refused
// client as the HTTP response body.
var (
	// ErrNoMQTTSubprotocol means the client did not offer "mqtt" in
	// Sec-WebSocket-Protocol. It gets HTTP 400.
	ErrNoMQTTSubprotocol = errors.New(`websocket: client must offer the "mqtt" subprotocol (Sec-WebSocket-Protocol: mqtt)`)
	// ErrClosed means the Handler was closed. New requests get HTTP 503.
	ErrClosed = errors.New("websocket: handler closed")
	// ErrNoServe means New was given a nil callback.
	ErrNoServe = errors.New("websocket: nil serve callback")
)

// Config configures a Handler. Its zero value works; each field documents
// its default.
type Config struct {
	// Path is where Serve mounts the handler. Default "/mqtt", the path
	// most MQTT clients use. ServeHTTP itself ignores it.
	Path string
	// ReadLimit is the largest WebSocket message, in bytes, a client may
	// send; a larger one closes the connection with status 1009 (message too
	// big). Default 1 MiB. -1 means no limit. The MQTT codec has its own
	// packet-size limit: this one stops a single message from streaming on
	// forever.
	ReadLimit int64
	// OriginPatterns lists the host patterns of browser origins allowed to
	// connect (see ws.AcceptOptions). Default none: a browser page from
	// another origin is refused, and clients that send no Origin header,
	// which is what devices and paho do, are accepted.
	OriginPatterns []string
	// HandshakeTimeout bounds how long Serve's HTTP server waits for a
	// request's headers. Default 10s.
	HandshakeTimeout time.Duration
	// Logger receives one debug line per refused or failed upgrade.
	// Default: discard.
	Logger *slog.Logger
}

// Handler is an http.Handler for MQTT over WebSocket. Make it with New.
type Handler struct {
	cfg   Config
	serve func(net.Conn)
	log   *slog.Logger

	wg sync.WaitGroup // one count per ServeHTTP call between tracking and return

	mu     sync.Mutex             // guards conns and closed
	conns  map[*liveConn]struct{} // connections being upgraded or served
	closed bool                   // set by Close; ServeHTTP then refuses with 503
}

// liveConn is one tracked connection: cancel ends it.
type liveConn struct {
	cancel context.CancelFunc
}

// New returns a Handler that calls serve with each accepted connection, on
// the request's goroutine. serve owns the net.Conn until it returns; the
// Handler closes the connection after that. serve must return once reads on
// the connection fail, which is how Close stops it.
func New(cfg Config, serve func(net.Conn)) (*Handler, error) {
	if serve == nil {
		return nil, ErrNoServe
	}
	if cfg.Path == "" {
		cfg.Path = "/mqtt"
	}
	if !strings.HasPrefix(cfg.Path, "/") {
		return nil, fmt.Errorf("websocket: new: Path %q must start with '/'", cfg.Path)
	}
	switch {
	case cfg.ReadLimit == 0:
		cfg.ReadLimit = 1 << 20
	case cfg.ReadLimit < -1:
		return nil, fmt.Errorf("websocket: new: ReadLimit %d is negative", cfg.ReadLimit)
	}
	switch {
	case cfg.HandshakeTimeout == 0:
		cfg.HandshakeTimeout = 10 * time.Second
	case cfg.HandshakeTimeout < 0:
		return nil, fmt.Errorf("websocket: new: HandshakeTimeout %v is negative", cfg.HandshakeTimeout)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.OriginPatterns = append([]string(nil), cfg.OriginPatterns...)
	return &Handler{cfg: cfg, serve: serve, log: log, conns: make(map[*liveConn]struct{})}, nil
}
