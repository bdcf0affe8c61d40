//go:build linux

package engine

import (
	"bytes"
	"errors"
	"io"
	"time"

	"floodgate/capstone/session"
	epoll "floodgate/ch03-networking/02-epoll"
	mqtt "floodgate/ch03-networking/03-mqtt"
	"golang.org/x/sys/unix"
)

// A loop's work on one connection: read and feed, run the CONNECT, write
// and close. All of it runs on the loop's goroutine.

// A connection's phases.
const (
	waitConnect = iota // reading the CONNECT
	connecting         // Connect running on its goroutine; nothing read
	open               // fed packets
)

// econn is one connection: everything here but queued and connDone belongs
// to the loop's goroutine (the connecting goroutine writes connErr, then
// connDone under l.mu, then posts the econn).
type econn struct {
	timed
	l        *loop
	fd       int
	s        *session.Conn
	release  func()
	phase    uint8
	connDone bool   // guarded by l.mu: Connect has returned
	connErr  error  // written before connDone
	in       []byte // a partial packet; nil when none
	out      []byte // bytes the socket did not take yet; nil when none
	events   uint32 // registered now; 0: not in the set
	ending   bool   // Output reported the end: close once out is written
	closed   bool
	readDL   int64 // CONNECT or keepalive deadline, as mono(t); 0: none
	writeDL  int64 // set while out holds bytes, as mono(t); 0: none
	queued   bool  // on l.ready; guarded by l.mu
}

// epoch is where the deadlines an econn keeps as int64 count from: 8 bytes
// each instead of a 24-byte time.Time, still on the monotonic clock, so a
// step of the wall clock neither fires nor delays a keepalive.
var epoch = time.Now()

// mono is t as nanoseconds since epoch, plus one so that 0 still means
// "no deadline"; t must carry a monotonic reading (from time.Now).
func mono(t time.Time) int64 { return int64(t.Sub(epoch)) + 1 }

func (c *econn) deadline() time.Time {
	d := c.writeDL
	if d == 0 || (c.readDL != 0 && c.readDL < d) {
		d = c.readDL
	}
	if d == 0 {
		return time.Time{}
	}
	return epoch.Add(time.Duration(d - 1))
}

// expire runs when a deadline has passed.
func (c *econn) expire(now time.Time) {
	l := c.l
	switch {
	case c.writeDL != 0 && mono(now) >= c.writeDL:
		c.s.Kill(0, session.ReasonWriteError)
		l.closeConn(c)
	case c.ending:
		l.closeConn(c)
	case c.phase == waitConnect:
		c.s.Kill(0, session.ReasonConnectTimeout) // slowloris
		l.flush(c)
	case c.phase == open:
		// [MQTT-3.1.2-24] one and a half keepalives of silence.
		c.s.Kill(mqtt.KeepAliveTimeout, session.ReasonKeepAlive)
		c.readDL = 0
		l.flush(c)
	}
}

// onReadable reads once into the shared buffer and feeds what came.
func (l *loop) onReadable(c *econn) {
	var n int
	var err error
	for {
		n, err = unix.Read(c.fd, l.buf)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	switch {
	case errors.Is(err, unix.EAGAIN):
		return
	case err == nil && n == 0:
		err = io.EOF
	}
	if err != nil {
		if c.phase == open && len(c.in) > 0 {
			err = io.ErrUnexpectedEOF
		}
		c.s.Fail(err)
		c.in = l.drop(c.in)
		l.flush(c)
		return
	}
	l.cfg.OnBytes(n, 0)
	b := l.buf[:n]
	if len(c.in) > 0 {
		c.in = append(c.in, b...)
		b = c.in
	}
	l.consume(c, b)
}

// consume handles b, which is c.in or the shared buffer.
func (l *loop) consume(c *econn, b []byte) {
	switch c.phase {
	case waitConnect:
		h, body, used, err := session.Split(b, c.s.MaxPacketSize())
		if errors.Is(err, io.ErrUnexpectedEOF) {
			l.keep(c, b)
			return
		}
		if err != nil {
			c.s.Fail(err)
			c.in = l.drop(c.in)
			l.flush(c)
			return
		}
		body = bytes.Clone(body)
		l.keep(c, b[used:])
		// The socket stays in the set while Connect runs: a client waits
		// for its CONNACK, so nothing comes, and keeping it costs no
		// system call. Whatever does come (a packet sent ahead, a
		// hang-up) waits for Connect; dispatch then takes the socket
		// out of the set (pause), or it would be reported in a spin.
		c.phase = connecting
		l.wheel.remove(&c.timed)
		l.connecting++
		l.cwg.Add(1)
		go func() {
			defer l.cwg.Done()
			c.connErr = c.s.Connect(h, body)
			l.mu.Lock()
			c.connDone = true
			l.mu.Unlock()
			l.post(c)
		}()
	case open:
		if ka := c.s.KeepAlive(); ka > 0 {
			c.readDL = mono(time.Now().Add(ka)) // flush moves the wheel entry (O(1))
		}
		used, err := c.s.Feed(b)
		if err != nil {
			c.in = l.drop(c.in)
		} else {
			l.keep(c, b[used:])
		}
		l.flush(c)
	}
}

// keep makes rest, the unused tail of a read, c's partial packet. An empty
// rest frees c.in: an idle connection holds no buffer.
func (l *loop) keep(c *econn, rest []byte) {
	switch {
	case len(rest) == 0:
		c.in = l.drop(c.in)
	case len(c.in) > 0: // rest is the tail of c.in
		c.in = c.in[:copy(c.in, rest)]
	default:
		var b []byte
		if k := len(l.free); k > 0 && len(rest) <= cap(l.free[k-1]) {
			b, l.free = l.free[k-1][:0], l.free[:k-1]
		}
		c.in = append(b, rest...)
	}
}

const smallBuf = 4 << 10

// drop returns b to the loop's pool of small buffers and returns nil.
func (l *loop) drop(b []byte) []byte {
	if b != nil && cap(b) <= smallBuf && len(l.free) < 256 {
		l.free = append(l.free, b[:0])
	}
	return nil
}

// service handles a post: Connect's result, output, a kill.
func (l *loop) service(c *econn) {
	if c.closed {
		return
	}
	if c.phase == connecting {
		l.mu.Lock()
		done := c.connDone
		l.mu.Unlock()
		if !done {
			return // killed while Connect runs: handled when it is done
		}
		l.connecting--
		if errors.Is(c.connErr, session.ErrAuthContinue) {
			l.authContinue(c)
			return
		}
		c.phase = open
		if c.connErr == nil {
			if c.events == 0 { // paused while Connect ran
				c.events = evRead
				if err := l.ctl(unix.EPOLL_CTL_ADD, c.fd, evRead); err != nil {
					c.events = 0
					c.s.Kill(0, session.ReasonEOF)
				}
			}
			now := time.Now()
			if ka := c.s.KeepAlive(); ka > 0 {
				c.readDL = mono(now.Add(ka))
			} else {
				c.readDL = 0
			}
			l.wheel.schedule(&c.timed, now)
			if len(c.in) > 0 {
				l.consume(c, c.in) // what came behind the CONNECT
				return
			}
		}
	}
	l.flush(c)
}

// authContinue runs when Connect asked for the next packet of an extended
// authentication (MQTT 5.0 section 4.12; session.ErrAuthContinue): c
// writes the AUTH its session has for it and reads again as it read the
// CONNECT, within the CONNECT's deadline, handing the next packet to
// Connect.
func (l *loop) authContinue(c *econn) {
	l.mu.Lock()
	c.connDone = false
	l.mu.Unlock()
	c.connErr = nil
	c.phase = waitConnect
	c.events = evRead
	if err := l.ctl(unix.EPOLL_CTL_ADD, c.fd, evRead); err != nil {
		c.events = 0
		c.s.Kill(0, session.ReasonEOF)
	}
	l.wheel.schedule(&c.timed, time.Now())
	l.flush(c)
	if len(c.in) > 0 && !c.closed && c.phase == waitConnect && c.s.Reason() == "" {
		l.consume(c, c.in) // what came behind the AUTH
	}
}

// flush writes what c's session has for it, as far as the socket takes it
// (with chapter 3's 02-epoll Write: the reader's own with MINE=1).
// While bytes wait for EPOLLOUT, c takes nothing more from its session's
// queue, which fills up: that is where the slow-consumer policy applies.
func (l *loop) flush(c *econn) {
	if c.closed || c.phase == connecting {
		return
	}
	if c.s.Reason() == session.ReasonSlowConsumer {
		l.closeConn(c) // discard what waits: Finish drops the queue
		return
	}
	if len(c.out) == 0 && !c.ending {
		buf, end := c.s.Output(l.wbuf[:0])
		if cap(buf) <= 1<<20 {
			l.wbuf = buf[:0]
		}
		if end {
			c.ending = true
			c.readDL = 0
		}
		if len(buf) > 0 {
			n, err := epoll.Write(c.fd, buf)
			l.cfg.OnBytes(0, n)
			if err != nil {
				c.s.Kill(0, session.ReasonWriteError)
				l.closeConn(c)
				return
			}
			if n < len(buf) {
				c.out = append([]byte(nil), buf[n:]...)
				c.writeDL = mono(time.Now().Add(l.cfg.WriteTimeout))
			}
		}
	}
	if c.s.Reason() != "" && len(c.out) > 0 {
		// Killed: what waits gets at most a second more, as on the
		// goroutine engine, so a takeover never waits on a peer that does
		// not read.
		if dl := mono(time.Now().Add(time.Second)); c.writeDL > dl {
			c.writeDL = dl
		}
	}
	switch {
	case len(c.out) == 0 && c.ending:
		l.closeConn(c)
		return
	case len(c.out) == 0:
		c.writeDL = 0
		l.setEvents(c, evRead)
	case c.ending:
		l.setEvents(c, evWrite)
	default:
		l.setEvents(c, evRead|evWrite)
	}
	if !c.closed {
		l.wheel.schedule(&c.timed, time.Now())
	}
}

// onWritable writes what waits; once it is all out, flush takes more.
func (l *loop) onWritable(c *econn) {
	if len(c.out) > 0 {
		n, err := epoll.Write(c.fd, c.out)
		l.cfg.OnBytes(0, n)
		if err != nil {
			c.s.Kill(0, session.ReasonWriteError)
			l.closeConn(c)
			return
		}
		c.out = c.out[n:]
		if len(c.out) > 0 {
			return
		}
		c.out = nil
		if !c.ending {
			c.writeDL = 0
		}
	}
	l.flush(c)
}

func (l *loop) setEvents(c *econn, ev uint32) {
	if c.events == ev {
		return
	}
	op := unix.EPOLL_CTL_MOD
	if c.events == 0 {
		op = unix.EPOLL_CTL_ADD
	}
	if err := l.ctl(op, c.fd, ev); err != nil {
		c.s.Kill(0, session.ReasonWriteError)
		l.closeConn(c)
		return
	}
	c.events = ev
}

// closeConn closes c's socket and ends its session. Never while Connect
// runs: then it only kills, and service closes after.
func (l *loop) closeConn(c *econn) {
	if c.closed {
		return
	}
	if c.phase == connecting {
		c.s.Kill(0, session.ReasonEOF)
		return
	}
	c.closed = true
	if c.s.Reason() == session.ReasonSlowConsumer {
		// Discard what the socket still holds: reset rather than drain.
		_ = unix.SetsockoptLinger(c.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	if c.events != 0 {
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	}
	unix.Close(c.fd)
	l.conns[c.fd] = nil
	l.nconns--
	l.wheel.remove(&c.timed)
	c.in, c.out = l.drop(c.in), nil
	l.finish(c)
	if !l.listening && !l.stopping {
		l.full.Store(false)
		_ = l.listen() // a descriptor is free again
	}
}

func (l *loop) finish(c *econn) {
	c.s.Finish()
	if c.release != nil {
		c.release()
	}
}
