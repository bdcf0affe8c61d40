package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"floodgate/capstone/session"
)

// ErrEpollUnsupported is returned by ServeEpoll on systems without epoll
// (anything but Linux).
var ErrEpollUnsupported = errors.New("engine: the epoll engine needs Linux")

// ErrFDLimit is wrapped by PlanEpoll and ServeEpoll when RLIMIT_NOFILE
// leaves a loop no room for a single connection.
var ErrFDLimit = errors.New("engine: RLIMIT_NOFILE leaves no room for connections")

// Defaults of EpollConfig.
const (
	DefaultReadBufferSize = 64 << 10
	DefaultMaxEvents      = 256
	DefaultTick           = 50 * time.Millisecond
	DefaultWheelSlots     = 512
)

// FDSlack is what a file-descriptor table keeps free beyond the
// descriptors the process holds when the loops start and the loops' own
// (an epoll descriptor and an eventfd each): room for the store, logs and
// the Go runtime. See EpollPlan.Reserve.
const FDSlack = 64

// EpollConfig configures ServeEpoll. The zero value works.
type EpollConfig struct {
	// Loops is the number of event loops; each accepts and owns its own
	// connections. Default runtime.GOMAXPROCS(0), or with private fd
	// tables enough loops for MaxConns (see PlanEpoll).
	Loops int
	// MaxConns is how many connections the engine must be able to hold
	// (the broker passes admission's MaxConns). 0: no target; one table's
	// worth. When MaxConns plus the reserve exceeds the soft
	// RLIMIT_NOFILE, the loops get private fd tables (PrivateFDs).
	MaxConns int
	// PrivateFDs gives every loop a file-descriptor table of its own
	// (sharded mode, Linux): the loop's goroutine locks its OS thread and
	// calls unshare(CLONE_FILES), so RLIMIT_NOFILE caps each loop instead
	// of the process. It engages by itself when MaxConns needs it; set it
	// to force it. See ServeEpoll for what it asks of the code that runs
	// on a loop.
	PrivateFDs bool
	// Logger gets one line at start saying how the engine is laid out
	// (loops, private tables, connections each). Default: discard.
	Logger *slog.Logger
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

// EpollPlan is how ServeEpoll lays out its loops for an EpollConfig on
// this process (PlanEpoll).
type EpollPlan struct {
	// Loops is the number of event loops.
	Loops int
	// PrivateFDs: each loop has a file-descriptor table of its own.
	PrivateFDs bool
	// Limit is the soft RLIMIT_NOFILE: the size of each table.
	Limit uint64
	// Reserve is what each table keeps for descriptors that are not
	// connections: those open when the plan was made, two per loop, and
	// FDSlack.
	Reserve int
	// PerLoop is how many connections one loop can hold: Limit - Reserve
	// with private tables; without, all loops share Limit - Reserve.
	PerLoop int
	// Cap is how many connections the engine can hold at most:
	// Loops × PerLoop with private tables, else Limit - Reserve. Beyond
	// it the kernel's fs.file-max, memory or MaxConns decide.
	Cap int
}

// String is the plan in the words of the engine's start-up log line.
func (p EpollPlan) String() string {
	if p.PrivateFDs {
		return fmt.Sprintf("epoll engine: sharded: %d loops with private fd tables, up to %s connections each (RLIMIT_NOFILE %d)",
			p.Loops, group(p.PerLoop), p.Limit)
	}
	return fmt.Sprintf("epoll engine: %d loops sharing one fd table, up to %s connections (RLIMIT_NOFILE %d)",
		p.Loops, group(p.Cap), p.Limit)
}

// planFor is PlanEpoll's arithmetic: limit is the soft RLIMIT_NOFILE, open
// the descriptors the process holds, procs GOMAXPROCS.
func planFor(cfg EpollConfig, limit uint64, open, procs int) (EpollPlan, error) {
	lim := int(min(limit, 1<<40))
	reserve := func(loops int) int { return open + 2*loops + FDSlack }
	p := EpollPlan{Loops: cfg.Loops, Limit: limit, PrivateFDs: cfg.PrivateFDs}
	if p.Loops <= 0 {
		p.Loops = max(procs, 1)
	}
	if !p.PrivateFDs && cfg.MaxConns > 0 && cfg.MaxConns > lim-reserve(p.Loops) {
		p.PrivateFDs = true
	}
	if p.PrivateFDs && cfg.Loops <= 0 && cfg.MaxConns > 0 {
		// Loops = ceil(MaxConns / (limit - reserve)); the reserve grows
		// with the loops, so settle it (a few rounds at most).
		for range 64 {
			per := lim - reserve(p.Loops)
			if per <= 0 {
				break
			}
			want := max(p.Loops, (cfg.MaxConns+per-1)/per)
			if want == p.Loops {
				break
			}
			p.Loops = want
		}
	}
	p.Reserve = reserve(p.Loops)
	p.PerLoop = lim - p.Reserve
	if p.PerLoop <= 0 {
		return p, fmt.Errorf("epoll plan for %d connections: %w: RLIMIT_NOFILE %d, %d loops, %d descriptors reserved in each table",
			cfg.MaxConns, ErrFDLimit, limit, p.Loops, p.Reserve)
	}
	p.Cap = p.PerLoop
	if p.PrivateFDs {
		p.Cap = p.Loops * p.PerLoop
	}
	return p, nil
}

// group writes n with thousands separators: 19800 -> "19,800".
func group(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + group(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// NewConn makes the session of a connection the epoll engine has accepted;
// wake must go to session.NewDriven. release, if not nil, runs on the loop
// once the connection has ended (after Finish).
type NewConn func(wake func()) (c *session.Conn, release func())
