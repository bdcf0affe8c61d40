//go:build floodgate.solution

package epoll

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Events a connection is registered for while it is being read, and while
// it also has bytes queued. EPOLLRDHUP reports a peer that shut down its
// side; EPOLLHUP and EPOLLERR are always reported, asked for or not.
const (
	evRead  = unix.EPOLLIN | unix.EPOLLRDHUP
	evWrite = unix.EPOLLOUT
)

// dispatch handles one event from epoll_wait.
func (l *Loop) dispatch(ev unix.EpollEvent) {
	fd := int(ev.Fd)
	if fd == l.lfd {
		l.accept()
		return
	}
	c, ok := l.conns[fd]
	if !ok {
		return // closed earlier in this batch of events
	}
	if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		l.onReadable(c)
	}
	if ev.Events&unix.EPOLLOUT != 0 && l.conns[fd] == c {
		l.onWritable(c)
	}
}

// accept takes every connection the listener has ready, until EAGAIN: the
// listener is edge-triggered, so what is left behind is not reported again.
func (l *Loop) accept() {
	for {
		fd, _, err := unix.Accept4(l.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
		case errors.Is(err, unix.EAGAIN):
			return
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
			continue
		case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE):
			// Out of descriptors, with connections still waiting. The
			// listener is edge-triggered and will not report them again:
			// the next closeConn, which frees a descriptor, retries.
			l.acceptErrors.Add(1)
			l.acceptBlocked = true
			return
		default: // ENOBUFS, ENOMEM...: count it, wait for the next connection
			l.acceptErrors.Add(1)
			return
		}
		c := &conn{fd: fd, events: evRead}
		if err := l.ctl(unix.EPOLL_CTL_ADD, fd, c.events); err != nil {
			unix.Close(fd)
			l.acceptErrors.Add(1)
			continue
		}
		l.conns[fd] = c
		l.accepted.Add(1)
		l.nConns.Add(1)
	}
}

// onReadable reads once into the shared buffer and echoes what came. A read
// of 0 bytes is the peer's FIN: the connection closes once its queue is
// flushed. Level-triggered: anything left unread is reported again.
func (l *Loop) onReadable(c *conn) {
	for {
		n, err := unix.Read(c.fd, l.buf)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return
		case err != nil:
			l.closeConn(c)
			return
		case n == 0:
			c.eof = true
			if len(c.out) == 0 {
				l.closeConn(c)
			} else if l.setEvents(c, evWrite) != nil { // stop reading, keep flushing
				l.closeConn(c)
			}
			return
		}
		l.send(c, l.buf[:n])
		return
	}
}

// send writes p to c now if nothing is queued before it, and queues the
// rest, copied, since p is the shared buffer. With bytes queued, c waits for
// EPOLLOUT; with MaxQueued queued, it stops being read.
func (l *Loop) send(c *conn, p []byte) {
	if len(c.out) == 0 {
		n, err := Write(c.fd, p)
		if err != nil {
			l.closeConn(c)
			return
		}
		p = p[n:]
	}
	if len(p) == 0 {
		return
	}
	c.out = append(c.out, p...)
	l.notePeak(len(c.out))
	events := uint32(evRead | evWrite)
	if len(c.out) >= l.cfg.MaxQueued {
		events = evWrite
		l.paused.Add(1)
	}
	if l.setEvents(c, events) != nil {
		l.closeConn(c)
	}
}

// onWritable flushes c's queue as far as the socket takes it. Empty again,
// c drops EPOLLOUT, frees its queue, and is read again (or closed, after a
// FIN).
func (l *Loop) onWritable(c *conn) {
	n, err := Write(c.fd, c.out)
	if err != nil {
		l.closeConn(c)
		return
	}
	c.out = c.out[n:]
	events := uint32(evRead | evWrite)
	switch {
	case len(c.out) == 0:
		c.out = nil // an idle connection holds no buffer
		if c.eof {
			l.closeConn(c)
			return
		}
		events = evRead
	case c.eof || len(c.out) >= l.cfg.MaxQueued:
		events = evWrite
	}
	if l.setEvents(c, events) != nil {
		l.closeConn(c)
	}
}

// Write writes as much of p to the non-blocking socket fd as the socket
// takes now, and returns how much it wrote. It retries a write interrupted
// by a signal (EINTR). A full send buffer (EAGAIN) is not an error: Write
// returns what it wrote so far and a nil error, and the caller keeps the
// rest for EPOLLOUT. Any other error means the connection is broken; the
// count is still what was written before it. Write does not block, and never
// retains p. The capstone's epoll engine writes with it too.
func Write(fd int, p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Write(fd, p[done:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return done, nil
		case err != nil:
			return done, err
		}
		done += n
	}
	return done, nil
}

// closeConn removes c from the epoll set and the map and closes it.
// Closing the descriptor would remove it from the set too, but only once no
// other descriptor refers to the same socket; the explicit delete is exact.
// If accept ran out of descriptors, the one just freed goes to the next
// waiting connection. (That connection may get c's descriptor number; an
// event for c later in the same batch then reaches it, and finds nothing to
// read or write.)
func (l *Loop) closeConn(c *conn) {
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	unix.Close(c.fd)
	delete(l.conns, c.fd)
	c.out = nil
	l.nConns.Add(-1)
	l.closed.Add(1)
	if l.acceptBlocked {
		l.acceptBlocked = false
		l.accept()
	}
}
