// Package broker is a small MQTT broker built from the chapter's MQTT codec
// (lab 3) and subscription trie (lab 4). It speaks MQTT 3.1.1 and 5.0 with
// QoS 0 and 1, retained messages, wills, keepalive, clean and persistent
// sessions (kept in memory), and session takeover.
//
// The lesson in a paragraph: a broker is mostly bookkeeping about sessions,
// which outlive connections. A client id names a session; a second
// connection with the same id takes the session over and the first is
// closed. A persistent session keeps its subscriptions and its unacknowledged
// QoS 1 messages while the client is away, and resends them, marked DUP, when
// it comes back. A connection that ends without DISCONNECT, by a dropped
// socket, a missed keepalive or a takeover, publishes its will. A retained
// message waits on its topic for subscribers that have not arrived yet.
//
// # Serving
//
// [Broker.Serve] accepts connections from a listener; [Broker.ServeConn]
// serves one connection of any kind (TCP, TLS, or a WebSocket adapted to
// net.Conn) in the caller's goroutine. [Broker.Close] stops both and waits
// for every connection to end.
//
// # Concurrency and locks
//
// A Broker is safe for concurrent use. Broker.mu guards the session table
// and the sets Close needs; each session's mu guards its connection, its
// filters and its QoS 1 messages; each connection's wmu serialises writes.
// Lock order: Broker.mu, then session.mu, then conn.wmu. Broker.retainMu is
// never held with another lock, and the trie's own lock is taken with none
// of ours held. Every PUBLISH to a session is written under its session.mu,
// so a client sees its messages in the order the broker routed them. No lock
// is held while waiting for another connection to end.
//
// # Limits of this lab
//
// QoS 2 is not supported: a QoS 2 PUBLISH ends the connection (an MQTT 5.0
// client is told so in CONNACK's Maximum QoS). Shared subscriptions are
// refused (0x9E in MQTT 5.0, 0x80 in 3.1.1). Sessions never expire, the will
// delay is ignored, and there is no authentication: lab 7 adds it.
package broker

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "floodgate/ch03-networking/03-mqtt"
	topics "floodgate/ch03-networking/04-topics"
)

// Config configures a [Broker]. The zero value works; each field documents
// its default.
type Config struct {
	// MaxPacketSize is the largest packet a client may send, fixed header
	// included. 0 means mqtt.DefaultMaxPacketSize (1 MiB).
	MaxPacketSize int
	// ConnectTimeout is how long a new connection has to send its CONNECT.
	// 0 means 10 seconds.
	ConnectTimeout time.Duration
	// WriteTimeout bounds each write to a client: a client that does not
	// read for that long is disconnected. 0 means 10 seconds.
	WriteTimeout time.Duration
	// MaxQueued is how many QoS 1 messages a session keeps waiting while
	// its client is offline. When it is full the oldest is dropped and
	// counted in Stats.Dropped. 0 means 1000.
	MaxQueued int
	// Logger receives one debug line per connection that ends, with the
	// reason. nil discards.
	Logger *slog.Logger
}

// Errors returned by the Broker.
var (
	// ErrClosed is returned by Serve after Close.
	ErrClosed = errors.New("broker: closed")
	// ErrBadConfig wraps a Config field New refuses.
	ErrBadConfig = errors.New("broker: bad config")
	// ErrUnsupported: the client asked for something this broker does not do
	// (QoS 2).
	ErrUnsupported = errors.New("broker: unsupported")
)

// Stats are counters since New.
type Stats struct {
	Dropped uint64 // QoS 1 messages dropped from a full offline queue
}

// Broker routes MQTT messages between clients. Create one with New.
type Broker struct {
	cfg  Config // read-only after New
	log  *slog.Logger
	subs topics.Trie[*session, mqtt.QoS] // filter -> session, granted QoS; has its own lock

	mu        sync.Mutex // guards the fields up to wg
	sessions  map[string]*session
	conns     map[*conn]struct{} // live connections, so Close can end them
	listeners map[net.Listener]struct{}
	closed    bool
	nextID    uint64         // for assigned client ids
	wg        sync.WaitGroup // Serve loops and ServeConn calls; Add under mu while !closed

	retainMu sync.RWMutex
	retained map[string]*message // topic -> last retained message; guarded by retainMu

	dropped atomic.Uint64
}

// message is one application message. It is never changed after it is
// made, so sessions share it.
type message struct {
	topic   string
	payload []byte
	qos     mqtt.QoS
	retain  bool // the RETAIN flag it was published with
}

// outbound is a QoS 1 message on its way to one session.
type outbound struct {
	id     uint16 // packet identifier; 0 while queued
	msg    *message
	retain bool // the RETAIN flag to send
}

// session is what a client id owns across connections.
type session struct {
	id    string
	b     *Broker
	owner *conn // the connection that holds the session; guarded by Broker.mu

	mu         sync.Mutex // guards the fields below
	conn       *conn      // where deliveries go; nil while offline or before CONNACK
	persistent bool       // outlives its connection
	filters    map[string]mqtt.QoS
	inflight   []outbound // QoS 1 sent and not yet acknowledged, oldest first
	queue      []outbound // QoS 1 waiting for the client to come back, oldest first
	lastID     uint16
}

// conn is one network connection.
type conn struct {
	nc           net.Conn
	writeTimeout time.Duration
	done         chan struct{} // closed when ServeConn returns
	closeOnce    sync.Once

	// Set while reading CONNECT, then read by this connection's goroutine
	// and (version only) by writers.
	version   mqtt.Version
	keepAlive uint16
	will      *message // nil: no will, or the will was discarded

	wmu  sync.Mutex // guards wbuf and writes to nc
	wbuf []byte
}
