// Package pools reuses memory and connections instead of making new ones
// for every message: sync.Pool buffers in size classes, a pool of message
// structs that keep no pointers while pooled, and a bounded pool of TCP
// connections to a downstream sink, the Go counterpart of a JDBC pool like
// HikariCP and a cousin of database/sql's.
//
// A pool is only a win when it returns what was asked for and holds
// nothing it should not. A 1 MiB buffer put back into a pool of 512-byte
// buffers pins that megabyte for as long as the pool keeps it; a pooled
// struct that still points at a closed client keeps the client alive. Both
// are bugs the tests can see: one by capacity, one with a weak pointer.
package pools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Buffer size classes: powers of two from MinBuffer to MaxBuffer.
const (
	MinBuffer = 512
	MaxBuffer = 64 << 10
	classes   = 8 // 512, 1K, 2K, 4K, 8K, 16K, 32K, 64K
)

// BufPool hands out byte buffers by size class. The zero value is ready to
// use and it is safe for concurrent use. Buffers travel as *[]byte so that
// putting one back does not allocate (a []byte in an interface would).
type BufPool struct {
	classes [classes]sync.Pool // classes[i] holds buffers of cap MinBuffer<<i
	dropped atomic.Uint64      // buffers Put refused: too big or too small
}

// Dropped returns how many buffers Put refused to keep.
func (p *BufPool) Dropped() uint64 { return p.dropped.Load() }

// Client is a connected device. Messages point at the client they came
// from.
type Client struct {
	ID string
}

// Message is one publish on its way through the gateway.
type Message struct {
	Topic   string
	Payload []byte
	From    *Client
	Props   map[string]string
}

// MaxPooledPayload is the largest payload capacity a pooled Message keeps.
const MaxPooledPayload = 4 << 10

// MessagePool recycles Messages. The zero value is ready to use and it is
// safe for concurrent use.
type MessagePool struct {
	pool sync.Pool
}

// ErrClosed is returned by ConnPool.Get after Close.
var ErrClosed = errors.New("pools: connection pool closed")

// ConnConfig sets up a ConnPool. Dial is required; the zero value of every
// other field works.
type ConnConfig struct {
	// Dial opens a new connection to the sink.
	Dial func(ctx context.Context) (net.Conn, error)
	// MaxOpen caps the connections open at once, idle or in use.
	// Default 8.
	MaxOpen int
	// MaxIdle caps the idle connections kept for reuse; a connection put
	// back when MaxIdle are already idle is closed. Default 2; -1 keeps
	// none. It is capped at MaxOpen.
	MaxIdle int
	// Check tells whether an idle connection still works before Get hands
	// it out; a connection that fails it is closed and Get goes on.
	// Default CheckAlive.
	Check func(net.Conn) error
}

// ConnStats counts what a ConnPool did.
type ConnStats struct {
	Dials     uint64 // connections opened
	Reused    uint64 // Gets served from the idle list
	Waits     uint64 // Gets that had to wait for a connection
	Unhealthy uint64 // idle connections that failed Check
}

// ConnPool is a bounded pool of connections to one sink. It is safe for
// concurrent use.
type ConnPool struct {
	cfg  ConnConfig
	sem  chan struct{} // one token per open connection; cap MaxOpen
	idle chan net.Conn // idle connections; cap MaxIdle

	mu     sync.Mutex    // guards closed; held while Put and Close touch idle
	closed bool          //
	done   chan struct{} // closed by Close; wakes waiting Gets

	dials, reused, waits, unhealthy atomic.Uint64
}

// NewConnPool returns an empty pool: it dials on demand.
func NewConnPool(cfg ConnConfig) (*ConnPool, error) {
	if cfg.Dial == nil {
		return nil, fmt.Errorf("pools: new conn pool: Dial is required")
	}
	if cfg.MaxOpen <= 0 {
		cfg.MaxOpen = 8
	}
	switch {
	case cfg.MaxIdle == 0:
		cfg.MaxIdle = 2
	case cfg.MaxIdle < 0:
		cfg.MaxIdle = 0
	}
	cfg.MaxIdle = min(cfg.MaxIdle, cfg.MaxOpen)
	if cfg.Check == nil {
		cfg.Check = CheckAlive
	}
	return &ConnPool{
		cfg:  cfg,
		sem:  make(chan struct{}, cfg.MaxOpen),
		idle: make(chan net.Conn, cfg.MaxIdle),
		done: make(chan struct{}),
	}, nil
}

// Stats returns the pool's counters.
func (p *ConnPool) Stats() ConnStats {
	return ConnStats{Dials: p.dials.Load(), Reused: p.reused.Load(), Waits: p.waits.Load(), Unhealthy: p.unhealthy.Load()}
}

// Open returns the number of connections open, idle or in use.
func (p *ConnPool) Open() int { return len(p.sem) }

// Idle returns the number of idle connections.
func (p *ConnPool) Idle() int { return len(p.idle) }

// ErrUnexpectedData is returned by CheckAlive for an idle connection that
// has bytes waiting: the protocol is out of step and the connection must
// not be reused.
var ErrUnexpectedData = errors.New("pools: idle connection has unread data")

// CheckAlive tells whether an idle connection is still open, without
// blocking. It returns nil when the connection is open with nothing
// waiting, ErrUnexpectedData when bytes are waiting (and consumes one), and
// another error (wrapping io.EOF when the peer closed) when it is dead.
//
// For a socket (a net.Conn that is a syscall.Conn, such as *net.TCPConn) on
// Unix it makes one non-blocking read(2) on the file descriptor. A read with
// a deadline already in the past would not do: Go's poller returns the
// timeout before it ever reads the socket, so it would report every TCP
// connection alive, closed or not. Other connections get that read with a
// past deadline all the same: net.Pipe answers it honestly, but a wrapper
// that hides its socket (a *tls.Conn, say) can only be reported alive, so
// give such a pool a Check of its own.
func CheckAlive(c net.Conn) error {
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			if n, ok, err := peekRaw(rc); ok {
				return checkResult(n, err)
			}
		}
	}
	if err := c.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	var b [1]byte
	n, err := c.Read(b[:])
	if rerr := c.SetReadDeadline(time.Time{}); rerr != nil {
		return fmt.Errorf("check: %w", rerr)
	}
	return checkResult(n, err)
}

// checkResult turns the outcome of CheckAlive's read into its answer.
func checkResult(n int, err error) error {
	var ne net.Error
	switch {
	case n > 0:
		return ErrUnexpectedData
	case errors.As(err, &ne) && ne.Timeout():
		return nil
	case err == nil:
		return io.ErrNoProgress
	}
	return fmt.Errorf("check: %w", err)
}
