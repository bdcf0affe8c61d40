package engine

import (
	"errors"
	"time"

	"floodgate/capstone/session"
)

// ErrEpollUnsupported is returned by ServeEpoll on systems without epoll
// (anything but Linux).
var ErrEpollUnsupported = errors.New("engine: the epoll engine needs Linux")

// Defaults of EpollConfig.
const (
	DefaultReadBufferSize = 64 << 10
	DefaultMaxEvents      = 256
	DefaultTick           = 50 * time.Millisecond
	DefaultWheelSlots     = 512
)

// EpollConfig configures ServeEpoll. The zero value works.
type EpollConfig struct {
	// Loops is the number of event loops; each accepts and owns its own
	// connections. Default runtime.GOMAXPROCS(0).
	Loops int
	// ReadBufferSize is the size of the one read buffer each loop shares
	// among its connections (default DefaultReadBufferSize). A connection
	// holds bytes of its own only while it has a partial packet.
	ReadBufferSize int
	// MaxEvents is how many events one epoll_wait may return (default
	// DefaultMaxEvents).
	MaxEvents int
	// Tick is the resolution of each loop's timing wheel, which times
	// CONNECT, keepalive and write deadlines (default DefaultTick).
	Tick time.Duration
	// WriteTimeout is how long a connection may keep unwritten bytes before
	// it is closed as a write error (default 10s, session.Config's).
	WriteTimeout time.Duration
	// OnBytes, if set, is told the bytes each read and write moved. It runs
	// on a loop and must only count.
	OnBytes func(in, out int)
}

// NewConn makes the session of a connection the epoll engine has accepted;
// wake must go to session.NewDriven. release, if not nil, runs on the loop
// once the connection has ended (after Finish).
type NewConn func(wake func()) (c *session.Conn, release func())
