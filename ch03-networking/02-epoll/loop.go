package epoll

import (
	"context"
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// Listen opens a non-blocking TCP listener on addr, an IPv4 "host:port"
// such as "127.0.0.1:0", and the epoll instance that will watch it. It does
// not accept anything until Run.
func Listen(addr string, cfg Config) (*Loop, error) {
	if cfg.ReadBufferSize < 0 || cfg.MaxQueued < 0 || cfg.MaxEvents < 0 {
		return nil, fmt.Errorf("listen: %w: negative field in %+v", ErrInvalidConfig, cfg)
	}
	cfg.ReadBufferSize = orDefault(cfg.ReadBufferSize, DefaultReadBufferSize)
	cfg.MaxQueued = orDefault(cfg.MaxQueued, DefaultMaxQueued)
	cfg.MaxEvents = orDefault(cfg.MaxEvents, DefaultMaxEvents)
	ta, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil || ta.IP.To4() == nil {
		return nil, fmt.Errorf("listen %q: %w: want an IPv4 host:port", addr, ErrInvalidConfig)
	}

	l := &Loop{cfg: cfg, epfd: -1, lfd: -1, wakefd: -1, conns: make(map[int]*conn),
		buf: make([]byte, cfg.ReadBufferSize), done: make(chan struct{})}
	fail := func(op string, err error) (*Loop, error) {
		l.closeFDs()
		return nil, fmt.Errorf("listen %s: %s: %w", addr, op, err)
	}
	if l.lfd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
		return fail("socket", err)
	}
	if err := unix.SetsockoptInt(l.lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt", err)
	}
	sa := &unix.SockaddrInet4{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To4())
	if err := unix.Bind(l.lfd, sa); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(l.lfd, unix.SOMAXCONN); err != nil {
		return fail("listen", err)
	}
	got, err := unix.Getsockname(l.lfd)
	if err != nil {
		return fail("getsockname", err)
	}
	l.addr = &net.TCPAddr{IP: ta.IP, Port: got.(*unix.SockaddrInet4).Port}

	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fail("epoll_create1", err)
	}
	if l.wakefd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return fail("eventfd", err)
	}
	// The listener is edge-triggered: accept drains it until EAGAIN, and a
	// listener it could not drain (EMFILE) does not wake the loop again and
	// again. The wake-up eventfd is level-triggered and read never.
	if err := l.ctl(unix.EPOLL_CTL_ADD, l.lfd, unix.EPOLLIN|unix.EPOLLET); err != nil {
		return fail("epoll_ctl", err)
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, l.wakefd, unix.EPOLLIN); err != nil {
		return fail("epoll_ctl", err)
	}
	return l, nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// Addr returns the address the loop listens on.
func (l *Loop) Addr() *net.TCPAddr { return l.addr }

// Stats returns a snapshot of the counters. Each field is read atomically;
// the snapshot as a whole is not.
func (l *Loop) Stats() Stats {
	return Stats{
		Conns:        l.nConns.Load(),
		Accepted:     l.accepted.Load(),
		Closed:       l.closed.Load(),
		AcceptErrors: l.acceptErrors.Load(),
		Paused:       l.paused.Load(),
		PeakQueued:   l.peakQueued.Load(),
	}
}

// Run runs the event loop on the calling goroutine until ctx is done or
// Close is called, then closes every connection, the listener and the epoll
// instance. It returns nil after a stop, ErrClosed if the loop was closed
// or already ran, or an epoll_wait error.
func (l *Loop) Run(ctx context.Context) error {
	l.mu.Lock()
	if l.state != stateIdle {
		l.mu.Unlock()
		return ErrClosed
	}
	l.state = stateRunning
	l.mu.Unlock()
	defer close(l.done)
	defer l.shutdown()

	stop := context.AfterFunc(ctx, l.wake)
	defer stop()
	events := make([]unix.EpollEvent, l.cfg.MaxEvents)
	for {
		n, err := unix.EpollWait(l.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:n] {
			if int(ev.Fd) == l.wakefd {
				return nil
			}
			l.dispatch(ev)
		}
	}
}

// Close stops Run and waits for it to close everything. If Run never
// started, Close closes the descriptors itself. Calling Close again is safe.
func (l *Loop) Close() error {
	l.mu.Lock()
	state := l.state
	if state == stateRunning {
		l.wakeLocked()
	}
	l.state = stateClosed
	l.mu.Unlock()
	switch state {
	case stateIdle:
		l.closeFDs()
		close(l.done)
	case stateRunning:
		<-l.done
	case stateClosed:
		<-l.done // a Run that stopped on its own, or a second Close
	}
	return nil
}

// wake makes epoll_wait return, if Run is still running.
func (l *Loop) wake() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == stateRunning {
		l.wakeLocked()
	}
}

// wakeLocked makes the eventfd readable. The caller holds mu and has seen
// stateRunning, so the eventfd is still open: shutdown leaves that state
// under mu before it closes anything.
func (l *Loop) wakeLocked() {
	one := [8]byte{1}
	unix.Write(l.wakefd, one[:])
}

// shutdown closes every connection, then the loop's own descriptors.
func (l *Loop) shutdown() {
	l.mu.Lock()
	l.state = stateClosed
	l.mu.Unlock()
	l.acceptBlocked = false // accept nothing more while closing
	for _, c := range l.conns {
		l.closeConn(c)
	}
	l.closeFDs()
}

func (l *Loop) closeFDs() {
	for _, fd := range []*int{&l.lfd, &l.wakefd, &l.epfd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// ctl registers, changes or removes fd's events in the epoll set.
func (l *Loop) ctl(op, fd int, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	if err := unix.EpollCtl(l.epfd, op, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl fd %d: %w", fd, err)
	}
	return nil
}

// setEvents re-registers c for events, if they changed.
func (l *Loop) setEvents(c *conn, events uint32) error {
	if c.events == events {
		return nil
	}
	c.events = events
	return l.ctl(unix.EPOLL_CTL_MOD, c.fd, events)
}

// notePeak records a new per-connection queue high-water mark.
func (l *Loop) notePeak(n int) {
	for {
		p := l.peakQueued.Load()
		if int64(n) <= p || l.peakQueued.CompareAndSwap(p, int64(n)) {
			return
		}
	}
}
