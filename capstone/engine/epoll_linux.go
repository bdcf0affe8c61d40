//go:build linux

package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"floodgate/capstone/session"
	mqtt "floodgate/ch03-networking/03-mqtt"
	"golang.org/x/sys/unix"
)

// ServeEpoll accepts connections on ln, a TCP listener, with cfg.Loops event
// loops (chapter 3's 02-epoll, grown up) until ctx is done; then every
// connection is killed with 0x8B Server shutting down, written what it has
// queued (for at most a second), and closed, and ServeEpoll returns nil once
// all have ended, or the first loop error. It closes ln.
//
// Each loop has its own epoll set and accepts for itself: the listener sits
// in every set with EPOLLEXCLUSIVE, so a new connection wakes one loop, and
// stays with it. A loop owns its connections outright: only its goroutine
// reads, writes or closes them. Anyone else (a publisher's loop delivering a
// message, a takeover, the slow-consumer policy) reaches a connection
// through its session.Conn, whose wake puts it on the loop's ready list and
// wakes the loop with an eventfd. An idle connection has no goroutine, no
// buffer and no timer: a small struct, its session, and a place in the
// loop's timing wheel when it has a keepalive. The one goroutine a
// connection ever gets is the one its CONNECT runs on, because that can
// block (bcrypt, waiting for a taken-over session).
//
// With private fd tables (cfg.PrivateFDs, or by itself when cfg.MaxConns
// needs it; see PlanEpoll) each loop's goroutine locks its OS thread for
// good and unshares its file-descriptor table: RLIMIT_NOFILE then caps
// each loop, not the process. The listener's duplicate, every loop's epoll
// descriptor and eventfd exist before the first unshare, so every table
// has them; of the other TCP/IP sockets the process held, the loop closes
// its copies at once (a copy would keep a peer from seeing its connection
// close). The sockets a loop accepts exist in its table only, which is why
// nothing but the loop may touch them. A loop whose table is full takes
// the listener out of its set (EMFILE), hands the waiting connections to
// the next loop that has room, and listens again when one of its own
// connections closes. When a loop returns, Go ends its thread, and the
// table with it. The code a loop runs (session.Hub's methods, Feed's and
// Finish's callees) must not open descriptors, nor use one opened after
// ServeEpoll started: it would not be in the loop's table, or worse, its
// number would be one of the loop's sockets. Descriptors opened before
// (the store's file, the log) are in every table.
func ServeEpoll(ctx context.Context, ln net.Listener, cfg EpollConfig, newConn NewConn) error {
	defer ln.Close()
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return fmt.Errorf("engine: epoll on %s: want a TCP listener, have %T", ln.Addr(), ln)
	}
	cfg.fill()
	plan, err := PlanEpoll(cfg)
	if err != nil {
		return fmt.Errorf("engine: epoll on %s: %w", ln.Addr(), err)
	}
	cfg.Loops, cfg.PrivateFDs = plan.Loops, plan.PrivateFDs
	cfg.Logger.Info(plan.String(), "loops", plan.Loops, "private_fds", plan.PrivateFDs,
		"per_loop", plan.PerLoop, "cap", plan.Cap, "rlimit_nofile", plan.Limit)
	// A duplicate of the listener's descriptor: the same socket, already
	// non-blocking, that the loops accept on without Go's poller.
	rc, err := tl.SyscallConn()
	if err != nil {
		return fmt.Errorf("engine: epoll on %s: %w", ln.Addr(), err)
	}
	lfd := -1
	if cerr := rc.Control(func(fd uintptr) {
		lfd, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); cerr != nil || err != nil {
		return fmt.Errorf("engine: epoll on %s: dup: %w", ln.Addr(), errors.Join(cerr, err))
	}
	defer unix.Close(lfd)
	// Accepted sockets inherit TCP_NODELAY from the listener (Linux
	// copies it): one system call here instead of one per connection.
	// Each loop checks its first accepted socket (see accept).
	nodelay := unix.SetsockoptInt(lfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) == nil

	loops := make([]*loop, 0, cfg.Loops)
	defer func() {
		for _, l := range loops {
			l.closeFDs()
		}
	}()
	for range cfg.Loops {
		l, err := newLoop(cfg, lfd, newConn)
		if err != nil {
			return fmt.Errorf("engine: epoll on %s: %w", ln.Addr(), err)
		}
		l.peers, l.idx, l.nodelay = &loops, len(loops), nodelay
		loops = append(loops, l)
	}
	stopAll := func() {
		for _, l := range loops {
			l.requestStop()
		}
	}
	stop := context.AfterFunc(ctx, stopAll)
	defer stop()
	var wg sync.WaitGroup
	errs := make([]error, len(loops))
	for i, l := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run := l.run
			if cfg.PrivateFDs {
				run = l.runPrivate
			}
			if errs[i] = run(); errs[i] != nil {
				stopAll()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// PlanEpoll says how ServeEpoll would lay out its loops for cfg on this
// process now: how many, whether with private fd tables, and how many
// connections each can hold, from the soft RLIMIT_NOFILE and the
// descriptors open. Private tables engage when cfg.MaxConns plus the
// reserve exceeds the limit; then, unless cfg.Loops is set, Loops is
// ceil(MaxConns / (limit - reserve)), at least GOMAXPROCS. The error wraps
// ErrFDLimit when the limit leaves no room.
func PlanEpoll(cfg EpollConfig) (EpollPlan, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return EpollPlan{}, fmt.Errorf("epoll plan: getrlimit: %w", err)
	}
	open, err := openFDs()
	if err != nil {
		return EpollPlan{}, fmt.Errorf("epoll plan: %w", err)
	}
	return planFor(cfg, r.Cur, open, runtime.GOMAXPROCS(0))
}

// openFDs counts the descriptors the calling thread's table holds.
func openFDs() (int, error) {
	n := 0
	err := eachFD(func(int) error { n++; return nil })
	return n, err
}

// eachFD calls f with every descriptor of the calling thread's table but
// the one it reads them with.
func eachFD(f func(fd int) error) error {
	dir, err := unix.Open("/proc/thread-self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("list descriptors: %w", err)
	}
	defer unix.Close(dir)
	var fds []int
	buf := make([]byte, 8<<10)
	for {
		n, err := unix.ReadDirent(dir, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("list descriptors: %w", err)
		}
		if n <= 0 {
			break
		}
		var names []string
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
		for _, name := range names {
			if fd, err := strconv.Atoi(name); err == nil && fd != dir {
				fds = append(fds, fd)
			}
		}
	}
	for _, fd := range fds {
		if err := f(fd); err != nil {
			return err
		}
	}
	return nil
}

// privateTable gives the calling thread, locked, a descriptor table of its
// own, a copy of the process's, and closes the copies of every TCP/IP
// socket in it but keep: listeners and connections, whose peers would not
// see them close while a copy lives. Standard input, output and error stay
// whatever they are (a log may go to a Unix socket, journald's), and so do
// Unix sockets: code on the loop may write to them.
func privateTable(keep int) error {
	if err := unix.Unshare(unix.CLONE_FILES); err != nil {
		return fmt.Errorf("unshare(CLONE_FILES): %w", err)
	}
	return eachFD(func(fd int) error {
		if fd == keep || fd <= 2 {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
			return nil
		}
		if d, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN); err == nil && (d == unix.AF_INET || d == unix.AF_INET6) {
			unix.Close(fd)
		}
		return nil
	})
}

// runPrivate runs the loop on a thread of its own, locked for good, with
// a private descriptor table: when it returns, Go ends the thread, and the
// table goes with it.
func (l *loop) runPrivate() error {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		// The main thread, which Go never ends (it would wedge it, table
		// and all). Hold it, so that another goroutine cannot land
		// here, while one does the work on another thread.
		errc := make(chan error, 1)
		go func() { errc <- l.runPrivate() }()
		err := <-errc
		runtime.UnlockOSThread() // its table is the process's still
		return err
	}
	if err := privateTable(l.lfd); err != nil {
		return fmt.Errorf("engine: epoll: private fd table: %w", err)
	}
	// This table's copy of the listener goes before ServeEpoll returns,
	// so the port is closed then.
	defer unix.Close(l.lfd)
	return l.run()
}

// fill sets the defaults EpollConfig documents (Loops: see PlanEpoll).
func (cfg *EpollConfig) fill() {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.ReadBufferSize = cmpOr(cfg.ReadBufferSize, DefaultReadBufferSize)
	cfg.MaxEvents = cmpOr(cfg.MaxEvents, DefaultMaxEvents)
	cfg.Tick = cmpOr(cfg.Tick, DefaultTick)
	cfg.WriteTimeout = cmpOr(cfg.WriteTimeout, 10*time.Second)
	if cfg.OnBytes == nil {
		cfg.OnBytes = func(int, int) {}
	}
}

func cmpOr[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Events a connection is registered for: reading (with EPOLLRDHUP for a
// peer that shut down its side), and writing while bytes wait.
const (
	evRead  = unix.EPOLLIN | unix.EPOLLRDHUP
	evWrite = unix.EPOLLOUT
)

// loop is one event loop. Everything but mu's fields belongs to the
// goroutine in run.
type loop struct {
	cfg     EpollConfig
	newConn NewConn
	epfd    int
	// epf is epfd as a pollable *os.File: the loop waits for its epoll
	// set to have events in Go's own poller, parked, so that no thread
	// sits in epoll_wait holding a P (see run).
	epf  *os.File
	eprc syscall.RawConn
	efd  int // eventfd: wakes the loop for the ready list and for stop
	lfd  int
	// listening: lfd is in the set. accept takes it out on EMFILE (the
	// level-triggered listener would wake the loop in a spin) and a close
	// or the next tick puts it back; with a private table (full), only a
	// close of its own.
	listening bool
	// full (private tables): this loop's table is full. Read by its peers
	// (handOff).
	full atomic.Bool
	// peers are all the loops of the ServeEpoll, this one at idx; nil
	// when run alone.
	peers      *[]*loop
	idx        int
	nodelay    bool                       // accepted sockets inherit TCP_NODELAY from lfd
	checked    bool                       // nodelay was checked on an accepted socket
	onPause    func()                     // tests: told when pause takes a socket out
	acceptFD   func(lfd int) (int, error) // accept4; tests replace it
	conns      []*econn                   // by fd; nil: none
	nconns     int                        // non-nil entries in conns
	buf, wbuf  []byte                     // the shared read buffer, and scratch for encoding
	free       [][]byte                   // small partial-packet buffers to reuse
	wheel      *wheel
	connecting int // Connect goroutines running
	stopping   bool
	cwg        sync.WaitGroup

	mu    sync.Mutex
	ready []*econn // guarded by mu: connections to service
	woken bool     // guarded by mu: efd written since the last drain
	// sleeping (guarded by mu) is set while run may park. Only then does
	// a post write efd: a loop that is running checks its ready list
	// before it parks, so a post to a busy loop, its own above all, costs
	// no system call.
	sleeping bool
	stop     bool // guarded by mu
	// nudged (guarded by mu): a full peer handed this loop the
	// connections waiting on the listener; it accepts once.
	nudged bool
	exited bool // guarded by mu: efd is closed, post does nothing
	// draining (guarded by mu) is set once epoll has failed: the loop
	// waits on posted, not on efd, for its running CONNECTs (see drain).
	draining bool
	posted   *sync.Cond // on mu: signalled by post while draining
}

func newLoop(cfg EpollConfig, lfd int, newConn NewConn) (*loop, error) {
	l := &loop{cfg: cfg, newConn: newConn, lfd: lfd, epfd: -1, efd: -1, acceptFD: accept4,
		buf: make([]byte, cfg.ReadBufferSize), wheel: newWheel(cfg.Tick, DefaultWheelSlots, time.Now())}
	l.posted = sync.NewCond(&l.mu)
	var err error
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(l.epfd, true); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("epoll set non-blocking: %w", err)
	}
	l.epf = os.NewFile(uintptr(l.epfd), "epoll") // closes epfd from now on
	if l.eprc, err = l.epf.SyscallConn(); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("epoll fd: %w", err)
	}
	if err := l.epf.SetReadDeadline(time.Time{}); err != nil {
		// Not in Go's poller: the loop could not wait on it.
		l.closeFDs()
		return nil, fmt.Errorf("epoll fd in Go's poller: %w", err)
	}
	if l.efd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, l.efd, unix.EPOLLIN); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("epoll_ctl eventfd: %w", err)
	}
	if err := l.listen(); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("epoll_ctl listener: %w", err)
	}
	return l, nil
}

// ctl is epoll_ctl on the loop's set. Adding a descriptor that is there
// already modifies it instead (a connection whose Connect left it in the
// set, see consume).
func (l *loop) ctl(op, fd int, events uint32) error {
	err := unix.EpollCtl(l.epfd, op, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)})
	if op == unix.EPOLL_CTL_ADD && errors.Is(err, unix.EEXIST) {
		err = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)})
	}
	return err
}

// pause takes c, whose Connect runs, out of the set: something came that
// must wait for Connect, and the level-triggered set would report it in a
// spin. service puts it back.
func (l *loop) pause(c *econn) {
	if c.events != 0 {
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
		c.events = 0
		if l.onPause != nil {
			l.onPause()
		}
	}
}

func (l *loop) listen() error {
	err := l.ctl(unix.EPOLL_CTL_ADD, l.lfd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE)
	l.listening = err == nil
	return err
}

func (l *loop) unlisten() {
	if l.listening {
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.lfd, nil)
		l.listening = false
	}
}

// closeFDs closes the loop's own descriptors, once run has returned (or
// never ran).
func (l *loop) closeFDs() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.exited {
		return
	}
	l.exited = true
	if l.efd >= 0 {
		unix.Close(l.efd)
	}
	switch {
	case l.epf != nil:
		l.epf.Close()
	case l.epfd >= 0:
		unix.Close(l.epfd)
	}
}

// post puts c on the ready list and wakes the loop. Any goroutine; never
// blocks.
func (l *loop) post(c *econn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.exited {
		return
	}
	if !c.queued {
		c.queued = true
		l.ready = append(l.ready, c)
	}
	if l.draining {
		l.posted.Signal()
	}
	l.wakeLocked()
}

func (l *loop) wakeLocked() {
	if l.sleeping && !l.woken {
		l.woken = true
		one := [8]byte{1}
		_, _ = unix.Write(l.efd, one[:])
	}
}

// nudge asks the loop to accept: a full peer could not. Any goroutine.
func (l *loop) nudge() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.exited {
		l.nudged = true
		l.wakeLocked()
	}
}

// handOff nudges the next loop whose table has room, if any: the
// connections waiting on the listener are its now. A loop it finds full
// in turn hands off to the next, so the chain ends.
func (l *loop) handOff() {
	if l.peers == nil {
		return
	}
	peers := *l.peers
	for k := 1; k < len(peers); k++ {
		if p := peers[(l.idx+k)%len(peers)]; !p.full.Load() {
			p.nudge()
			return
		}
	}
}

// retryListen: the listener is out of the set for a reason a tick may
// have cured (a shared table or the system out of descriptors).
func (l *loop) retryListen() bool {
	return !l.listening && !l.stopping && !l.full.Load()
}

func (l *loop) requestStop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.exited {
		l.stop = true
		l.wakeLocked()
	}
}

// run is the loop: wait, dispatch events, service the ready list, advance
// the wheel. After a stop it kills every connection and returns once all
// are closed.
func (l *loop) run() error {
	defer l.cwg.Wait()
	events := make([]unix.EpollEvent, l.cfg.MaxEvents)
	var batch []*econn
	var deadline time.Time // epf's read deadline now
	// The wait's result and the poller's callback live outside the loop:
	// a closure made per turn escaped to the heap (two allocations per
	// wake-up, about 0.65 per message at 20K msg/s).
	var n int
	var werr error
	wait := func(fd uintptr) bool {
		n, werr = unix.EpollWait(int(fd), events, 0)
		return n > 0 || werr != nil && !errors.Is(werr, unix.EINTR)
	}
	for {
		// Wake for the wheel's next tick, if it holds anything.
		next := time.Time{}
		if l.wheel.n > 0 || l.retryListen() {
			next = l.wheel.at.Add(l.cfg.Tick)
			if l.retryListen() {
				next = time.Now().Add(l.cfg.Tick)
			}
		}
		if !next.Equal(deadline) {
			_ = l.epf.SetReadDeadline(next)
			deadline = next
		}
		// epoll_wait with no timeout, and while it finds nothing, park in
		// Go's poller until the epoll descriptor is readable (its set has
		// events). A blocking epoll_wait would hold its P until sysmon
		// took it back, up to 10 ms later on an idle runtime: that cost
		// every message a wait for a P.
		n, werr = 0, nil
		l.mu.Lock()
		busy := len(l.ready) > 0 || l.stop && !l.stopping || l.nudged
		l.sleeping = !busy
		l.mu.Unlock()
		var err error
		if busy { // the ready list waits: look at events, do not park
			n, werr = unix.EpollWait(l.epfd, events, 0)
		} else {
			// No runtime.Gosched before parking: it cut the in-process
			// QoS 1 round trip (a client in this process answered
			// before the park), but cost the broker 25% more CPU at
			// 20K msg/s from clients in another process
			// (BENCHMARKS.md, "Latency on the epoll engine").
			err = l.eprc.Read(wait)
		}
		l.mu.Lock()
		l.sleeping = false
		l.mu.Unlock()
		if err == nil && werr != nil && !errors.Is(werr, unix.EINTR) {
			err = werr
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			l.shutdown()
			l.drain()
			return fmt.Errorf("engine: epoll_wait: %w", err)
		}
		if err != nil {
			n = 0
		}
		for _, ev := range events[:max(n, 0)] {
			l.dispatch(ev)
		}
		l.mu.Lock()
		batch = append(batch[:0], l.ready...)
		clear(l.ready)
		l.ready = l.ready[:0]
		for _, c := range batch {
			c.queued = false
		}
		stop, nudged := l.stop, l.nudged
		l.nudged = false
		l.mu.Unlock()
		for _, c := range batch {
			l.service(c)
		}
		clear(batch)
		if nudged && l.listening && !l.stopping {
			l.accept()
		}
		now := time.Now()
		l.wheel.advance(now)
		if stop && !l.stopping {
			l.stopping = true
			l.unlisten()
			for _, c := range l.conns {
				if c != nil {
					c.s.Kill(mqtt.ServerShuttingDown, session.ReasonShutdown)
				}
			}
		}
		if l.stopping && l.nconns == 0 && l.connecting == 0 {
			return nil
		}
		if l.retryListen() {
			_ = l.listen() // after EMFILE or ENFILE: try again
		}
	}
}

// shutdown closes every connection at once, after a loop failure, but
// those whose CONNECT is running: drain closes them.
func (l *loop) shutdown() {
	l.stopping = true // closeConn must not put the listener back
	l.unlisten()
	for _, c := range l.conns {
		if c == nil {
			continue
		}
		c.s.Kill(mqtt.ServerShuttingDown, session.ReasonShutdown)
		if c.phase != connecting {
			l.closeConn(c)
		}
	}
}

// drain waits, after a loop failure, for the CONNECTs still running on
// their goroutines, and closes each connection as soon as its Connect has
// returned: its session is finished (detached, the broker told) rather
// than left attached to a socket nobody serves. The loop cannot wait in
// epoll any more, so it waits for posts; and it keeps finishing
// connections while it waits, because a CONNECT may be waiting for
// another of its connections to end (a takeover).
func (l *loop) drain() {
	var batch []*econn
	for l.connecting > 0 {
		l.mu.Lock()
		l.draining = true
		for len(l.ready) == 0 {
			l.posted.Wait()
		}
		batch = append(batch[:0], l.ready...)
		clear(l.ready)
		l.ready = l.ready[:0]
		for _, c := range batch {
			c.queued = false
		}
		l.mu.Unlock()
		for _, c := range batch {
			if c.closed || c.phase != connecting {
				continue
			}
			l.mu.Lock()
			done := c.connDone
			l.mu.Unlock()
			if done {
				l.connecting--
				c.phase = open
				l.closeConn(c)
			}
		}
	}
}

func (l *loop) dispatch(ev unix.EpollEvent) {
	fd := int(ev.Fd)
	switch fd {
	case l.efd:
		var b [8]byte
		_, _ = unix.Read(l.efd, b[:])
		l.mu.Lock()
		l.woken = false
		l.mu.Unlock()
		return
	case l.lfd:
		l.accept()
		return
	}
	if fd < 0 || fd >= len(l.conns) || l.conns[fd] == nil {
		return
	}
	c := l.conns[fd]
	if c.phase == connecting {
		l.pause(c)
		return
	}
	if ev.Events&unix.EPOLLOUT != 0 {
		l.onWritable(c)
	}
	if c.closed || ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		return
	}
	if c.ending {
		if ev.Events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			l.closeConn(c)
		}
		return
	}
	l.onReadable(c)
}

// accept4 accepts a connection without asking for its address
// (unix.Accept4 converts it, at the cost of a getsockopt per call).
func accept4(lfd int) (int, error) {
	fd, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(lfd), 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// accept takes up to 64 new connections (the listener is level-triggered:
// more wake the loop again), each registered for reading, with the CONNECT
// deadline in the wheel.
func (l *loop) accept() {
	now := time.Now()
	for range 64 {
		fd, err := l.acceptFD(l.lfd)
		switch {
		case err == nil:
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
			continue
		case errors.Is(err, unix.EMFILE) && l.cfg.PrivateFDs:
			// This loop's own table is full: until one of its
			// connections closes, its peers accept.
			l.unlisten()
			l.full.Store(true)
			l.handOff()
			return
		case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE):
			l.unlisten() // until a descriptor is free
			return
		default: // EAGAIN (another loop took it), ENOBUFS...
			return
		}
		if l.nodelay && !l.checked {
			v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
			l.nodelay, l.checked = err == nil && v != 0, true
		}
		if !l.nodelay {
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) // as net does
		}
		c := &econn{l: l, fd: fd, events: evRead}
		c.timed = timed{slot: -1, owner: c}
		c.s, c.release = l.newConn(func() { l.post(c) })
		if err := l.ctl(unix.EPOLL_CTL_ADD, fd, evRead); err != nil {
			c.events = 0
			c.s.Kill(0, session.ReasonEOF)
			c.closed = true
			unix.Close(fd)
			l.finish(c)
			continue
		}
		if fd >= len(l.conns) {
			l.conns = append(l.conns, make([]*econn, fd+1-len(l.conns))...)
		}
		l.conns[fd] = c
		l.nconns++
		c.readDL = mono(now.Add(c.s.ConnectTimeout()))
		l.wheel.schedule(&c.timed, now)
	}
}
