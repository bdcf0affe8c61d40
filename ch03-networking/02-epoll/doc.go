// Package epoll is an echo server driven by one Linux epoll event loop: no
// goroutine per connection, no buffer per idle connection. One goroutine
// waits in epoll_wait, accepts what the listener has ready, reads what each
// readable socket has into one shared buffer, writes it back, and queues
// what the socket cannot take yet until epoll says it is writable again
// (EPOLLOUT). A connection that queues too much stops being read until it
// drains: backpressure, with a bounded queue per connection.
//
// Compare with ../01-tcpscale, which spends a goroutine and a buffer on each
// connection: README.md measures both at the same connection count.
//
// Linux only (golang.org/x/sys/unix).
package epoll

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
)

// Defaults used when a Config field is zero.
const (
	DefaultReadBufferSize = 64 << 10
	DefaultMaxQueued      = 256 << 10
	DefaultMaxEvents      = 256
)

// Errors returned by the loop.
var (
	// ErrClosed is returned by Run after Close, or when Run is called twice.
	ErrClosed = errors.New("epoll: loop closed")
	// ErrInvalidConfig is wrapped by Listen for a bad Config or address.
	ErrInvalidConfig = errors.New("epoll: invalid config")
)

// Config configures a Loop. Its zero value works.
type Config struct {
	// ReadBufferSize is the size of the one read buffer the loop shares
	// among all its connections (default DefaultReadBufferSize, 64 KiB).
	ReadBufferSize int
	// MaxQueued bounds the bytes queued for one connection that its socket
	// would not take yet (default DefaultMaxQueued, 256 KiB). At the bound
	// the loop stops reading that connection until the queue drains, so a
	// client that sends without reading slows itself down and nobody else.
	MaxQueued int
	// MaxEvents is how many events one epoll_wait may return
	// (default DefaultMaxEvents).
	MaxEvents int
}

// Stats counts what the loop did. Conns is a gauge; the rest are totals.
type Stats struct {
	Conns        int64 // connections open now
	Accepted     int64 // connections accepted
	Closed       int64 // connections closed (by the peer, an error, or Close)
	AcceptErrors int64 // accept failures other than EAGAIN
	Paused       int64 // times a connection stopped being read because its queue was full
	PeakQueued   int64 // the most bytes ever queued for one connection
}

// conn is the whole per-connection state: a descriptor, the bytes its socket
// would not take yet, and the events it is registered for. Everything here
// is owned by the goroutine in Run; nothing locks it.
type conn struct {
	fd     int
	out    []byte // queued for writing; nil when empty, so an idle conn holds no buffer
	events uint32 // the epoll events fd is registered for now
	eof    bool   // the peer shut its side down: close once out is flushed
}

// Loop is an epoll echo server. Create it with Listen, start it with Run,
// stop it with Close or by cancelling Run's context.
type Loop struct {
	cfg  Config       // read-only after Listen
	addr *net.TCPAddr // read-only after Listen

	// Descriptors: created by Listen, closed by Run when it returns (or by
	// Close if Run never started).
	epfd, lfd, wakefd int

	// Owned by the goroutine in Run: no lock.
	conns map[int]*conn
	buf   []byte
	// acceptBlocked is set when accept stopped on EMFILE or ENFILE with
	// connections still waiting: the edge-triggered listener will not
	// report them again, so the next closed connection retries accept.
	acceptBlocked bool

	mu    sync.Mutex
	state int           // guarded by mu: stateIdle, stateRunning, stateClosed
	done  chan struct{} // closed when Run has returned and closed everything

	nConns, accepted, closed, acceptErrors, paused, peakQueued atomic.Int64
}

const (
	stateIdle = iota
	stateRunning
	stateClosed
)
