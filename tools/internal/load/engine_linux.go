//go:build linux

package load

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	mqtt "floodgate/ch03-networking/03-mqtt"
)

// The engine: a few event loops, one goroutine each, every one with its own
// epoll instance and the raw non-blocking sockets it owns. A connection is a
// small struct in its loop's map and costs no goroutine, no timer and no
// read buffer while it is idle: reads go through the loop's shared buffer,
// and only a partial packet is kept per connection. Every operation on a
// connection runs on its loop's goroutine; the scenario driver talks to a
// loop only through post, which wakes the loop with an eventfd.
//
// With Config.PrivateFDs each loop has a private fd table
// (runtime.LockOSThread + unshare(CLONE_FILES)), which is how make c1m holds
// a million sockets under RLIMIT_NOFILE 20,000: nothing outside a loop ever
// touches a connection's fd. A ready connection waits in its loop's pingQ
// for its next PINGREQ, so keepalives go out spread as the ramp spread the
// connections.

type connState uint8

const (
	stDialing connState = iota
	stConnectSent
	stSubscribeSent
	stReady
)

type conn struct {
	fd      int
	id      int32
	pingAt  int32 // when the next PINGREQ is due, ms since s.epoch (ready only)
	pub     bool  // a publisher (in HoldLoad it also subscribes, to a topic of its own)
	got     bool  // a sweep message arrived (HoldLoad)
	state   connState
	partial []byte // the start of a packet not yet whole; nil when idle
	out     []byte // bytes the socket did not take; nil when drained
	tmpl    []byte // a publisher's encoded PUBLISH, payload last
}

type loop struct {
	s     *shared
	idx   int
	epfd  int
	evfd  int
	stopF atomic.Bool

	mu     sync.Mutex
	posted []func(*loop) // guarded by mu

	// Everything below is owned by the loop's goroutine.
	target   unix.SockaddrInet4 // a copy per loop: connect(2) writes into it
	conns    map[int]*conn
	pubs     []*conn
	again    []*conn // publishers that yielded while still writable
	parked   []*conn // publishers waiting for the in-flight window
	rbuf     []byte
	wbuf     []byte
	pkt      mqtt.Publish
	hist     Histogram
	rx       int64 // received, not yet added to s.received
	firstRx  time.Duration
	lastRx   time.Duration
	blast    bool
	pacing   bool
	paceRate float64
	paceT0   time.Time
	paceSent int64
	paceNext int
	// pingQ holds the ready connections in the order their PINGREQ is
	// due (pingAt only grows along it); pingQ[:pingHead] is spent.
	pingQ    []*conn
	pingHead int
	sweepRx  int64 // sweep messages received, not yet added to s.sweepRx
}

type engine struct {
	loops []*loop
	wg    sync.WaitGroup
}

func newEngine(s *shared, n int) (*engine, error) {
	e := &engine{}
	for i := range n {
		l := &loop{s: s, idx: i, target: s.target, conns: make(map[int]*conn), rbuf: make([]byte, 256<<10)}
		var err error
		if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
			e.closeFDs()
			return nil, fmt.Errorf("load: epoll_create1: %w", err)
		}
		if l.evfd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
			unix.Close(l.epfd)
			e.closeFDs()
			return nil, fmt.Errorf("load: eventfd: %w", err)
		}
		e.loops = append(e.loops, l)
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(l.evfd)}); err != nil {
			e.closeFDs()
			return nil, fmt.Errorf("load: epoll_ctl eventfd: %w", err)
		}
	}
	return e, nil
}

func (e *engine) closeFDs() {
	for _, l := range e.loops {
		unix.Close(l.epfd)
		unix.Close(l.evfd)
	}
}

// start runs every loop on its own goroutine until stop.
func (e *engine) start() {
	for _, l := range e.loops {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			l.run()
		}()
	}
}

// stop closes every connection, stops the loops and waits for them.
func (e *engine) stop() {
	for _, l := range e.loops {
		l.stopF.Store(true)
		l.wake()
	}
	e.wg.Wait()
	e.closeFDs()
}

// post runs f on loop i's goroutine.
func (e *engine) post(i int, f func(*loop)) {
	l := e.loops[i]
	l.mu.Lock()
	l.posted = append(l.posted, f)
	l.mu.Unlock()
	l.wake()
}

func (l *loop) wake() {
	var one = [8]byte{1}
	unix.Write(l.evfd, one[:]) // EAGAIN means a wake-up is already pending
}

func (l *loop) run() {
	if l.s.cfg.PrivateFDs {
		// Give this thread its own copy of the fd table: the sockets it
		// opens from now on count against RLIMIT_NOFILE in its table
		// only. The goroutine never unlocks, so the thread (and its
		// table) ends with it. epfd and evfd were opened before, so both
		// tables hold them; wake writes evfd through the process table.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FILES); err != nil {
			l.s.noteErr("unshare(CLONE_FILES)", err)
		}
	}
	events := make([]unix.EpollEvent, 512)
	for {
		timeout := 100
		switch {
		case len(l.again) > 0:
			timeout = 0
		case l.pacing, len(l.parked) > 0:
			timeout = 1
		}
		n, err := unix.EpollWait(l.epfd, events, timeout)
		if err != nil && !errors.Is(err, unix.EINTR) {
			l.s.noteErr("epoll_wait", err)
			n = 0
		}
		for _, ev := range events[:max(n, 0)] {
			if int(ev.Fd) == l.evfd {
				var b [8]byte
				unix.Read(l.evfd, b[:])
				continue
			}
			if c := l.conns[int(ev.Fd)]; c != nil {
				l.event(c, ev.Events)
			}
		}
		l.mu.Lock()
		posted := l.posted
		l.posted = nil
		l.mu.Unlock()
		for _, f := range posted {
			f(l)
		}
		if l.stopF.Load() {
			l.closeAll()
			return
		}
		if len(l.again) > 0 {
			again := l.again
			l.again = nil
			for _, c := range again {
				if l.conns[c.fd] == c && len(c.out) == 0 {
					l.pump(c)
				}
			}
		}
		if len(l.parked) > 0 && l.s.window() > 0 {
			l.again = append(l.again, l.parked...)
			l.parked = nil
		}
		if l.pacing {
			l.pace()
		}
		l.keepalive()
		l.flushCounts()
	}
}

func (l *loop) flushCounts() {
	if l.rx > 0 {
		l.s.received.Add(l.rx)
		l.rx = 0
	}
	if l.sweepRx > 0 {
		l.s.sweepRx.Add(l.sweepRx)
		l.sweepRx = 0
	}
}

// dial opens connection id from its source address, without blocking.
func (l *loop) dial(id int32, pub bool) {
	s := l.s
	c := &conn{fd: -1, id: id, pub: pub}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		l.fail(c, "socket", err)
		return
	}
	c.fd = fd
	// Let connect pick the port, per destination: one source address then
	// holds up to a port range of connections to each broker.
	_ = unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	src := s.sources[int(id)%len(s.sources)]
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src.As4()}); err != nil {
		l.fail(c, "bind "+src.String(), err)
		return
	}
	if err := unix.Connect(fd, &l.target); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		l.fail(c, "connect", err)
		return
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.fail(c, "epoll_ctl", err)
		return
	}
	l.conns[fd] = c
}

// fail counts a connection that never became ready and closes it.
func (l *loop) fail(c *conn, op string, err error) {
	l.s.failed.Add(1)
	l.s.noteErr(op, err)
	l.drop(c)
}

// lose counts a ready connection that the broker closed.
func (l *loop) lose(c *conn, op string, err error) {
	if c.state != stReady {
		l.fail(c, op, err)
		return
	}
	l.s.lost.Add(1)
	l.s.noteErr(op, err)
	l.drop(c)
}

func (l *loop) drop(c *conn) {
	if c.fd >= 0 {
		delete(l.conns, c.fd)
		unix.Close(c.fd) // also removes it from the epoll set
		c.fd = -1
	}
}

func (l *loop) closeAll() {
	disc, _ := (&mqtt.Disconnect{}).AppendTo(nil, l.s.version)
	for fd, c := range l.conns {
		if c.state == stReady && len(c.out) == 0 {
			unix.Write(fd, disc)
		}
		// RST instead of FIN: no TIME_WAIT left behind per connection.
		_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		unix.Close(fd)
	}
	clear(l.conns)
	l.pubs = nil
	l.pingQ, l.pingHead = nil, 0
}

func (l *loop) event(c *conn, ev uint32) {
	if c.state == stDialing {
		if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return
		}
		if soerr, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || soerr != 0 {
			if err == nil {
				err = unix.Errno(soerr)
			}
			l.fail(c, "connect", err)
			return
		}
		l.s.tcpUp.Add(1)
		l.sendConnect(c)
		if c.fd < 0 {
			return
		}
	}
	if ev&unix.EPOLLIN != 0 || ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		l.read(c)
		if c.fd < 0 {
			return
		}
	}
	if ev&unix.EPOLLOUT != 0 && len(c.out) > 0 {
		l.flush(c)
	}
}

func (l *loop) read(c *conn) {
	for {
		n, err := unix.Read(c.fd, l.rbuf)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) {
				return
			}
			if errors.Is(err, unix.EINTR) {
				continue
			}
			l.lose(c, "read", err)
			return
		}
		if n == 0 {
			l.lose(c, "read", io.EOF)
			return
		}
		data := l.rbuf[:n]
		if len(c.partial) > 0 {
			c.partial = append(c.partial, data...)
			data = c.partial
		}
		used := l.packets(c, data)
		if c.fd < 0 {
			return
		}
		rest := data[used:]
		switch {
		case len(rest) == 0:
			c.partial = nil
		case len(c.partial) > 0:
			c.partial = append(c.partial[:0], rest...) // copy within, overlap-safe
		default:
			c.partial = append([]byte(nil), rest...)
		}
	}
}

// packets handles every whole packet at the front of b and returns how many
// bytes they took.
func (l *loop) packets(c *conn, b []byte) int {
	used := 0
	for used < len(b) {
		h, hl, err := mqtt.ParseHeader(b[used:], 1<<20)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return used
		}
		if err != nil {
			l.lose(c, "parse", err)
			return used
		}
		end := used + hl + int(h.RemainingLength)
		if end > len(b) {
			return used
		}
		l.packet(c, h, b[used+hl:end])
		used = end
		if c.fd < 0 {
			return used
		}
	}
	return used
}

func (l *loop) packet(c *conn, h mqtt.FixedHeader, body []byte) {
	s := l.s
	switch h.Type {
	case mqtt.PUBLISH:
		if err := l.pkt.Decode(h, body, s.version); err != nil {
			l.lose(c, "decode PUBLISH", err)
			return
		}
		now := time.Since(s.epoch)
		if p := l.pkt.Payload; len(p) >= 16 && string(p[8:16]) == sweepMagic {
			if !c.got {
				c.got = true
				l.sweepRx++
			}
			return
		}
		if l.rx == 0 && l.firstRx == 0 {
			l.firstRx = now
		}
		l.lastRx = now
		l.rx++
		if p := l.pkt.Payload; len(p) >= 8 {
			l.hist.Record(now - time.Duration(binary.LittleEndian.Uint64(p)))
		}
	case mqtt.CONNACK:
		var ack mqtt.Connack
		if err := ack.Decode(h, body, s.version); err != nil {
			l.fail(c, "decode CONNACK", err)
			return
		}
		if ack.ReasonCode.IsError() {
			l.fail(c, "CONNACK", fmt.Errorf("refused: %v", ack.ReasonCode))
			return
		}
		s.connected.Add(1)
		if c.pub && s.scenario != HoldLoad {
			l.ready(c)
			return
		}
		sub := mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: s.filter(c.id)}}}
		b, err := sub.AppendTo(l.wbuf[:0], s.version)
		if err != nil {
			l.fail(c, "encode SUBSCRIBE", err)
			return
		}
		c.state = stSubscribeSent
		l.write(c, b)
	case mqtt.SUBACK:
		var ack mqtt.SubAck
		if err := ack.Decode(h, body, s.version); err != nil {
			l.fail(c, "decode SUBACK", err)
			return
		}
		if len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0].IsError() {
			l.fail(c, "SUBACK", fmt.Errorf("refused: %v", ack.ReasonCodes))
			return
		}
		l.ready(c)
	case mqtt.DISCONNECT:
		l.lose(c, "DISCONNECT from broker", io.EOF)
	}
	// PINGRESP and anything else: nothing to do.
}

func (l *loop) sendConnect(c *conn) {
	s := l.s
	cp := mqtt.Connect{CleanStart: true, KeepAlive: s.keepAlive, ClientID: s.clientID(c.id)}
	b, err := cp.AppendTo(l.wbuf[:0], s.version)
	if err != nil {
		l.fail(c, "encode CONNECT", err)
		return
	}
	c.state = stConnectSent
	l.write(c, b)
}

func (l *loop) ready(c *conn) {
	c.state = stReady
	if half := l.pingEvery(); half > 0 {
		c.pingAt = int32((time.Since(l.s.epoch) + half) / time.Millisecond)
		l.pingQ = append(l.pingQ, c)
	}
	if c.pub {
		p := mqtt.Publish{Topic: []byte(l.s.topic(c.id)), Payload: make([]byte, l.s.payload)}
		b, err := p.AppendTo(nil, l.s.version)
		if err != nil {
			l.fail(c, "encode PUBLISH", err)
			return
		}
		c.tmpl = b
		l.pubs = append(l.pubs, c)
	} else {
		l.s.readySubs.Add(1)
	}
	l.s.ready.Add(1)
}

// write sends b, keeping what the socket does not take in c.out; the
// edge-triggered EPOLLOUT says when to flush it. b may be l.wbuf.
func (l *loop) write(c *conn, b []byte) {
	if len(c.out) > 0 {
		c.out = append(c.out, b...)
		return
	}
	for len(b) > 0 {
		n, err := unix.Write(c.fd, b)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.EAGAIN) {
				break
			}
			l.lose(c, "write", err)
			return
		}
		b = b[n:]
	}
	if len(b) > 0 {
		c.out = append(c.out, b...)
	}
}

func (l *loop) flush(c *conn) {
	b := c.out
	c.out = nil
	l.write(c, b)
	if c.fd >= 0 && len(c.out) == 0 && c.pub && l.blast {
		l.pump(c)
	}
}

// appendMessages appends k PUBLISH packets from publisher c to dst, each
// stamped with the time it was written.
func (l *loop) appendMessages(dst []byte, c *conn, k int) []byte {
	off := len(c.tmpl) - l.s.payload
	for range k {
		at := len(dst)
		dst = append(dst, c.tmpl...)
		binary.LittleEndian.PutUint64(dst[at+off:], uint64(time.Since(l.s.epoch)))
	}
	return dst
}

// pump writes as fast as the socket takes it (fan-in): until EAGAIN, the
// message budget runs out, or 256 KiB, after which c waits its turn.
func (l *loop) pump(c *conn) {
	const batch = 32
	s := l.s
	for written := 0; written < 256<<10; {
		if s.stopPub.Load() {
			return
		}
		if s.window() <= 0 {
			l.parked = append(l.parked, c)
			return
		}
		left := s.budget.Add(-batch)
		k := batch
		if left < 0 {
			k += int(left)
			if k <= 0 {
				s.stopPub.Store(true)
				return
			}
		}
		l.wbuf = l.appendMessages(l.wbuf[:0], c, k)
		written += len(l.wbuf)
		s.sent.Add(int64(k))
		l.write(c, l.wbuf)
		if c.fd < 0 || len(c.out) > 0 {
			return // wait for EPOLLOUT
		}
	}
	l.again = append(l.again, c)
}

// startBlast makes every publisher of the loop pump.
func (l *loop) startBlast() {
	l.blast = true
	for _, c := range l.pubs {
		if len(c.out) == 0 {
			l.pump(c)
		}
	}
}

// startPacing makes the loop's publishers send rate messages per second
// between them, round robin, from t0 on.
func (l *loop) startPacing(rate float64, t0 time.Time) {
	if len(l.pubs) == 0 || rate <= 0 {
		return
	}
	l.pacing, l.paceRate, l.paceT0, l.paceSent = true, rate, t0, 0
}

func (l *loop) pace() {
	s := l.s
	if s.stopPub.Load() {
		l.pacing = false
		return
	}
	due := int64(time.Since(l.paceT0).Seconds()*l.paceRate) - l.paceSent
	if due <= 0 {
		return
	}
	// After a stall, catch up by at most a tenth of a second's worth.
	due = min(due, int64(l.paceRate/10)+1)
	left := s.budget.Add(-due)
	if left < 0 {
		due += left
		s.stopPub.Store(true)
	}
	l.paceSent += max(due, 0)
	for range due {
		c := l.pubs[l.paceNext%len(l.pubs)]
		l.paceNext++
		if c.fd < 0 {
			continue
		}
		l.wbuf = l.appendMessages(l.wbuf[:0], c, 1)
		s.sent.Add(1)
		l.write(c, l.wbuf)
	}
}

// pingEvery is how often a ready connection sends PINGREQ: each half
// keepalive (0: never).
func (l *loop) pingEvery() time.Duration {
	return time.Duration(l.s.keepAlive) * time.Second / 2
}

// keepalive sends PINGREQ on each ready connection half a keepalive after
// it became ready, then each half keepalive: the pings are spread as the
// ramp spread the connections, not sent in one burst per loop.
func (l *loop) keepalive() {
	half := l.pingEvery()
	if half == 0 || l.pingHead == len(l.pingQ) {
		return
	}
	now := int32(time.Since(l.s.epoch) / time.Millisecond)
	var ping []byte
	for l.pingHead < len(l.pingQ) {
		c := l.pingQ[l.pingHead]
		if c.pingAt > now {
			break
		}
		l.pingQ[l.pingHead] = nil
		l.pingHead++
		if c.fd < 0 || l.conns[c.fd] != c {
			continue // dropped
		}
		if len(c.out) == 0 {
			if ping == nil {
				ping, _ = (&mqtt.PingReq{}).AppendTo(nil, l.s.version)
			}
			l.write(c, ping)
			if c.fd < 0 {
				continue
			}
		}
		c.pingAt = now + int32(half/time.Millisecond)
		l.pingQ = append(l.pingQ, c)
	}
	if l.pingHead > 1024 && 2*l.pingHead > len(l.pingQ) {
		n := copy(l.pingQ, l.pingQ[l.pingHead:])
		clear(l.pingQ[n:])
		l.pingQ, l.pingHead = l.pingQ[:n], 0
	}
}

// sweepMagic marks a sweep message: payload bytes 8 to 16.
const sweepMagic = "c1msweep"

// sweep sends one sweep message to the topic of each subscriber in ids,
// through the loop's publishers in turn.
func (l *loop) sweep(ids []int32) {
	s := l.s
	if len(l.pubs) == 0 {
		return
	}
	var payload [16]byte
	copy(payload[8:], sweepMagic)
	for _, id := range ids {
		c := l.pubs[l.paceNext%len(l.pubs)]
		l.paceNext++
		if c.fd < 0 {
			continue
		}
		binary.LittleEndian.PutUint64(payload[:8], uint64(time.Since(s.epoch)))
		p := mqtt.Publish{Topic: []byte(s.filter(id)), Payload: payload[:]}
		b, err := p.AppendTo(l.wbuf[:0], s.version)
		if err != nil {
			s.noteErr("encode sweep PUBLISH", err)
			return
		}
		l.wbuf = b
		s.sweepSent.Add(1)
		l.write(c, b)
	}
}

// census counts the loop's connections: ready ones that are still open,
// and of them those whose TCP state is ESTABLISHED (TCP_INFO).
func (l *loop) census() Census {
	var n Census
	for _, c := range l.conns {
		if c.state != stReady {
			n.NotReady++
			continue
		}
		n.Held++
		if c.pub {
			n.Publishers++
		} else {
			n.Subscribers++
			if c.got {
				n.Swept++
			}
		}
		if ti, err := unix.GetsockoptTCPInfo(c.fd, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil && ti.State == tcpEstablished {
			n.Established++
		}
	}
	return n
}

// tcpEstablished is TCP_ESTABLISHED in TCP_INFO's state (include/net/tcp_states.h).
const tcpEstablished = 1

type sockaddrT = unix.SockaddrInet4

// sockaddr converts a target for connect(2).
func sockaddr(ap netip.AddrPort) unix.SockaddrInet4 {
	return unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
}

// fdLimit returns the soft RLIMIT_NOFILE.
func fdLimit() (uint64, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	return r.Cur, nil
}
