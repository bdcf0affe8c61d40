//go:build linux

package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
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
func ServeEpoll(ctx context.Context, ln net.Listener, cfg EpollConfig, newConn NewConn) error {
	defer ln.Close()
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return fmt.Errorf("engine: epoll on %s: want a TCP listener, have %T", ln.Addr(), ln)
	}
	cfg.fill()
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
			if errs[i] = l.run(); errs[i] != nil {
				stopAll()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// fill sets the defaults EpollConfig documents.
func (cfg *EpollConfig) fill() {
	if cfg.Loops <= 0 {
		cfg.Loops = runtime.GOMAXPROCS(0)
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
	// or the next tick puts it back.
	listening  bool
	conns      map[int]*econn
	buf, wbuf  []byte   // the shared read buffer, and scratch for encoding
	free       [][]byte // small partial-packet buffers to reuse
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
	exited   bool // guarded by mu: efd is closed, post does nothing
	// draining (guarded by mu) is set once epoll has failed: the loop
	// waits on posted, not on efd, for its running CONNECTs (see drain).
	draining bool
	posted   *sync.Cond // on mu: signalled by post while draining
}

func newLoop(cfg EpollConfig, lfd int, newConn NewConn) (*loop, error) {
	l := &loop{cfg: cfg, newConn: newConn, lfd: lfd, epfd: -1, efd: -1, conns: make(map[int]*econn),
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

func (l *loop) ctl(op, fd int, events uint32) error {
	return unix.EpollCtl(l.epfd, op, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)})
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
	for {
		// Wake for the wheel's next tick, if it holds anything.
		next := time.Time{}
		if l.wheel.n > 0 || !l.listening && !l.stopping {
			next = l.wheel.at.Add(l.cfg.Tick)
			if !l.listening && !l.stopping {
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
		var n int
		var werr error
		l.mu.Lock()
		busy := len(l.ready) > 0 || l.stop && !l.stopping
		l.sleeping = !busy
		l.mu.Unlock()
		var err error
		if busy { // the ready list waits: look at events, do not park
			n, werr = unix.EpollWait(l.epfd, events, 0)
		} else {
			err = l.eprc.Read(func(fd uintptr) bool {
				n, werr = unix.EpollWait(int(fd), events, 0)
				return n > 0 || werr != nil && !errors.Is(werr, unix.EINTR)
			})
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
		stop := l.stop
		l.mu.Unlock()
		for _, c := range batch {
			l.service(c)
		}
		clear(batch)
		now := time.Now()
		l.wheel.advance(now)
		if stop && !l.stopping {
			l.stopping = true
			l.unlisten()
			for _, c := range l.conns {
				c.s.Kill(mqtt.ServerShuttingDown, session.ReasonShutdown)
			}
		}
		if l.stopping && len(l.conns) == 0 && l.connecting == 0 {
			return nil
		}
		if !l.listening && !l.stopping {
			_ = l.listen() // after EMFILE: try again
		}
	}
}

// shutdown closes every connection at once, after a loop failure, but
// those whose CONNECT is running: drain closes them.
func (l *loop) shutdown() {
	l.stopping = true // closeConn must not put the listener back
	l.unlisten()
	for _, c := range l.conns {
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
	c := l.conns[fd]
	if c == nil {
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

// accept takes up to 64 new connections (the listener is level-triggered:
// more wake the loop again), each registered for reading, with the CONNECT
// deadline in the wheel.
func (l *loop) accept() {
	now := time.Now()
	for range 64 {
		fd, _, err := unix.Accept4(l.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
			continue
		case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE):
			l.unlisten() // until a descriptor is free
			return
		default: // EAGAIN (another loop took it), ENOBUFS...
			return
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) // as net does
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
		l.conns[fd] = c
		c.readDL = now.Add(c.s.ConnectTimeout())
		l.wheel.schedule(&c.timed, now)
	}
}
