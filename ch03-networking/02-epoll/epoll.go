//go:build !floodgate.solution

package epoll

import (
	"errors"

	"golang.org/x/sys/unix"
)

// errTODO is what the stub of Write returns until you write it.
var errTODO = errors.New("epoll: Write is not implemented yet (TODO Task 2)")

// dispatch handles one event from epoll_wait.
func (l *Loop) dispatch(ev unix.EpollEvent) {
	// TODO(Task 1): if ev.Fd is the listener, accept; otherwise find the
	// conn in l.conns and call onReadable on EPOLLIN (and, for Task 3, on
	// EPOLLRDHUP, EPOLLHUP and EPOLLERR).
	// TODO(Task 2): call onWritable on EPOLLOUT, if the conn is still open.
}

// accept takes every connection the listener has ready, until EAGAIN: the
// listener is edge-triggered, so what is left behind is not reported again.
func (l *Loop) accept() {
	// TODO(Task 1): loop on unix.Accept4(l.lfd, SOCK_NONBLOCK|SOCK_CLOEXEC);
	// register each fd with EPOLLIN|EPOLLRDHUP (l.ctl), store a *conn in
	// l.conns, count it in l.accepted and l.nConns. Stop at EAGAIN; count
	// other errors in l.acceptErrors.
	// TODO(Task 4): on EMFILE or ENFILE, set l.acceptBlocked before
	// returning.
}

// onReadable reads once into the shared buffer and echoes what came. A read
// of 0 bytes is the peer's FIN: the connection closes once its queue is
// flushed. Level-triggered: anything left unread is reported again.
func (l *Loop) onReadable(c *conn) {
	// TODO(Task 1): unix.Read(c.fd, l.buf) and pass what came to l.send.
	// TODO(Task 3): a read of 0 bytes or an error other than EAGAIN/EINTR
	// closes the connection (after flushing c.out, for a FIN).
}

// send writes p to c now if nothing is queued before it, and queues the
// rest, copied, since p is the shared buffer. With bytes queued, c waits for
// EPOLLOUT; with MaxQueued queued, it stops being read.
func (l *Loop) send(c *conn, p []byte) {
	// TODO(Task 1): write p to c.fd.
	// TODO(Task 2): write with Write, keep what the socket did not take in
	// c.out, register EPOLLOUT, call l.notePeak, and drop EPOLLIN (count
	// l.paused) when c.out reaches l.cfg.MaxQueued.
}

// onWritable flushes c's queue as far as the socket takes it. Empty again,
// c drops EPOLLOUT, frees its queue, and is read again (or closed, after a
// FIN).
func (l *Loop) onWritable(c *conn) {
	// TODO(Task 2): Write c.out; keep the rest; when it is empty set c.out
	// to nil and go back to EPOLLIN only.
}

// Write writes as much of p to the non-blocking socket fd as the socket
// takes now, and returns how much it wrote. It retries a write interrupted
// by a signal (EINTR). A full send buffer (EAGAIN) is not an error: Write
// returns what it wrote so far and a nil error, and the caller keeps the
// rest for EPOLLOUT. Any other error means the connection is broken; the
// count is still what was written before it. Write does not block, and never
// retains p. The capstone's epoll engine writes with it too.
func Write(fd int, p []byte) (int, error) {
	// TODO(Task 2): loop on unix.Write(fd, p[done:]) until all of p is
	// written: retry on EINTR, return (done, nil) on EAGAIN, and
	// (done, err) on any other error. send and onWritable use it.
	return 0, errTODO
}

// closeConn removes c from the epoll set and the map and closes it. If
// accept ran out of descriptors, the one just freed goes to the next
// waiting connection.
func (l *Loop) closeConn(c *conn) {
	// TODO(Task 3): EPOLL_CTL_DEL, close the fd, delete from l.conns,
	// update l.nConns and l.closed.
	// TODO(Task 4): if l.acceptBlocked, clear it and accept again: the
	// descriptor just freed can take a waiting connection.
}
