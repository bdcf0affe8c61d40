// Package tcpscale is a TCP echo server built to hold many connections at
// once, with one goroutine per connection and the four things such a server
// needs before it meets a real fleet of devices:
//
//   - an accept loop that backs off on temporary errors (EMFILE, ENFILE)
//     instead of spinning or dying;
//   - a cap on open connections, so a flood is refused at the door and counted;
//   - an idle deadline, so a device that vanished without a FIN does not hold
//     a descriptor, a goroutine and a buffer forever;
//   - Shutdown(ctx), which stops accepting, closes every connection and waits
//     for every goroutine it started.
//
// The lesson measures what one connection costs in Go memory (heap plus
// goroutine stacks) and which limits of the machine cap the count; see
// README.md and `go run floodgate/tools/cmd/tune`.
package tcpscale

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults used when a Config field is zero.
const (
	DefaultMaxConns       = 10_000
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultReadBufferSize = 1024
	DefaultBackoffMin     = 5 * time.Millisecond
	DefaultBackoffMax     = time.Second
)

// Errors returned by the server.
var (
	// ErrServerClosed is returned by Serve after Shutdown was called.
	ErrServerClosed = errors.New("tcpscale: server closed")
	// ErrInvalidConfig is wrapped by New when a Config field is out of range.
	ErrInvalidConfig = errors.New("tcpscale: invalid config")
	// ErrNotImplemented is what the stub returns until you write the code.
	ErrNotImplemented = errors.New("tcpscale: not implemented")
)

// Config configures a Server. Its zero value works: every zero field takes
// the default named beside it.
type Config struct {
	// MaxConns caps the connections served at once (default
	// DefaultMaxConns). A connection accepted at the cap is closed at once
	// and counted in Stats.Rejected: the server rejects, it does not hold.
	MaxConns int
	// IdleTimeout closes a connection that sent nothing for this long
	// (default DefaultIdleTimeout). Each read renews it.
	IdleTimeout time.Duration
	// ReadBufferSize is the size of each connection's read buffer
	// (default DefaultReadBufferSize, 1 KiB).
	ReadBufferSize int
	// BackoffMin and BackoffMax bound the pause after a temporary accept
	// error: the pause starts at BackoffMin, doubles on each error in a row,
	// stops growing at BackoffMax, and resets after a successful Accept
	// (defaults DefaultBackoffMin and DefaultBackoffMax).
	BackoffMin, BackoffMax time.Duration
	// Logger receives one record per accept error and per rejected
	// connection (default: discard).
	Logger *slog.Logger
}

// Stats counts what the server did. All fields are totals since New, except
// Active.
type Stats struct {
	Active       int64 // connections being served now
	Accepted     int64 // connections admitted under the cap
	Rejected     int64 // connections closed at once because of the cap
	IdleClosed   int64 // connections closed by the idle deadline
	AcceptErrors int64 // temporary accept errors that caused a back-off
}

// Server is a goroutine-per-connection echo server. Create it with New.
// Its methods are safe for concurrent use.
type Server struct {
	cfg Config // read-only after New
	log *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{} // guarded by mu
	conns     map[net.Conn]struct{}     // guarded by mu
	closed    bool                      // guarded by mu; set by Shutdown
	done      chan struct{}             // closed by Shutdown (under mu), wakes a back-off

	wg sync.WaitGroup // one count per Serve call and per connection goroutine

	active, accepted, rejected, idleClosed, acceptErrors atomic.Int64
}
