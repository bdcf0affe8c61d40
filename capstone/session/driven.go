package session

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	mqtt "floodgate/ch03-networking/03-mqtt"
)

// The driven side of a Conn: an event loop (floodgate/capstone/engine's
// epoll engine) owns the socket and calls these methods from its one
// goroutine, except Connect, which it may run elsewhere since it can block.
// The state machine is the goroutine engine's: connectPacket, handle and end.
//
// The loop's order: Split the first packet and run Connect with its body; on
// success Feed every later byte; whenever wake has been called, write what
// Output returns (until Output reports the end); then close the socket and
// call Finish, once, after Connect has returned.

// NewDriven returns a Conn with no net.Conn, for an event loop. refuse is
// the admission verdict (Success, or the code its CONNACK must carry). wake
// is called, from any goroutine and possibly with a session's lock held,
// each time the Conn has output to write or has been killed; it must not
// block and must not call back into the Conn.
func NewDriven(cfg *Config, hub Hub, refuse mqtt.ReasonCode, wake func()) *Conn {
	c := newConn(cfg, hub, refuse) // no reader: the loop reads
	c.wake = wake
	return c
}

// MaxPacketSize is the inbound packet size limit.
func (c *Conn) MaxPacketSize() int { return c.cfg.MaxPacketSize }

// KeepAlive returns how long the connection may stay silent after CONNECT
// before it is closed, one and a half times the keepalive
// [MQTT-3.1.2-24]; 0: no limit.
func (c *Conn) KeepAlive() time.Duration {
	return time.Duration(c.keepAlive) * 1500 * time.Millisecond
}

// Split finds the first whole packet in b. It returns its header, its body
// (a sub-slice of b) and the bytes it used, or an error wrapping
// io.ErrUnexpectedEOF when b holds only part of it, or the codec's error
// for a bad or oversized header.
func Split(b []byte, maxSize int) (mqtt.FixedHeader, []byte, int, error) {
	if len(b) < 2 {
		// Feed ends nearly every read here, with b empty: no allocation
		// (the codec's error for a short header is built with fmt).
		return mqtt.FixedHeader{}, nil, 0, errPartial
	}
	h, hl, err := mqtt.ParseHeader(b, maxSize)
	if err != nil {
		return h, nil, 0, err
	}
	end := hl + int(h.RemainingLength)
	if end > len(b) {
		return h, nil, 0, errPartial
	}
	return h, b[hl:end], end, nil
}

// errPartial is Split's error for a packet not whole yet.
var errPartial = fmt.Errorf("split: partial packet: %w", io.ErrUnexpectedEOF)

// Connect handles the CONNECT (h and body; the caller must not change body
// before Connect returns). On success the Conn is attached to its session, with
// its CONNACK queued. On failure it has been killed with the reason, and
// Output holds the refusal to write, if any. Connect may block (a
// credentials check, waiting for a taken-over connection to finish), so an
// event loop runs it off the loop. It runs again only after it returned
// ErrAuthContinue (an extended authentication goes on: write Output, then
// read the next packet as the CONNECT was read and call Connect with it).
func (c *Conn) Connect(h mqtt.FixedHeader, body []byte) error {
	err := c.connectStep(h, body)
	if errors.Is(err, ErrAuthContinue) {
		return err
	}
	if err != nil {
		c.Fail(err)
		return err
	}
	c.st.attach(c)
	c.connected = true
	return nil
}

// Fail ends the connection for err: a read error (io.EOF for a peer that
// closed), a timeout before CONNECT, or the error Split or Connect
// returned.
func (c *Conn) Fail(err error) {
	if c.st == nil {
		var ce *closeErr
		if !errors.As(err, &ce) {
			err = connectReadErr(err)
			errors.As(err, &ce)
		}
		c.Kill(0, ce.reason)
		return
	}
	c.graceful = c.end(err)
}

// Feed handles the whole packets at the front of b, after a successful
// Connect, and returns how many bytes it used; the rest is a partial packet
// to feed again with more bytes behind it. An error means the connection
// has ended (it has been killed with the reason): stop feeding it. Packets
// decoded keep no reference to b.
func (c *Conn) Feed(b []byte) (int, error) {
	used := 0
	for c.Reason() == "" {
		h, body, n, err := Split(b[used:], c.cfg.MaxPacketSize)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return used, nil
		}
		var p mqtt.Packet
		var pub *mqtt.Publish
		if err == nil {
			used += n
			if h.Type == mqtt.PUBLISH {
				// The hot path: a pooled PUBLISH, zeroed, so Decode
				// gives it fresh topic, payload and property slices.
				// handle keeps none of the struct itself (publish copies
				// what it routes), so it goes back after.
				pub = publishPool.Get().(*mqtt.Publish)
				*pub = mqtt.Publish{}
				p, err = pub, pub.Decode(h, body, c.version)
			} else {
				p, err = mqtt.DecodePacket(h, body, c.version)
			}
		}
		if err == nil {
			err = c.handle(p)
		}
		if pub != nil {
			*pub = mqtt.Publish{} // keeps nothing it decoded alive
			publishPool.Put(pub)
		}
		if err != nil {
			c.graceful = c.end(err)
			return used, err
		}
	}
	return used, ErrKilled
}

// publishPool holds zeroed PUBLISH structs: the ones Feed decodes into,
// and the QoS 0 deliveries buildPublish makes and Output has encoded. A
// PUBLISH (336 bytes, most of them its properties) was the largest
// allocation per message on the epoll engine's path, and allocations per
// message set the GC's pace.
var publishPool = sync.Pool{New: func() any { return new(mqtt.Publish) }}

// ErrKilled is returned by Feed for a connection already killed (from
// another goroutine, or by a packet fed before).
var ErrKilled = errors.New("session: connection killed")

// Output appends to dst what the loop must write now: a refusal from
// Connect, the queued packets, encoded, and, once the Conn has been killed,
// a 5.0 client's DISCONNECT; end reports that: write dst, then close the
// socket (with no linger for a slow consumer: see Reason). After end, Output
// returns nothing more.
func (c *Conn) Output(dst []byte) (out []byte, end bool) {
	if c.closing {
		return dst, true
	}
	killed := c.Reason() != ""
	if killed && c.killWhy == ReasonSlowConsumer {
		c.closing = true
		return dst, true
	}
	items := c.out.Take() // an idle Conn keeps no array
	if len(items) > 0 {
		c.cfg.QueueDepth(-len(items), 0)
	}
	for _, p := range items {
		dst = c.encode(dst, p)
		if pub, ok := p.(*mqtt.Publish); ok && pub.QoS == mqtt.AtMostOnce {
			// A QoS 0 delivery (buildPublish's) is nobody's once it is
			// encoded: QoS 1 and 2 ones stay in flight, and are not
			// returned.
			*pub = mqtt.Publish{}
			publishPool.Put(pub)
		}
	}
	if !killed {
		return dst, false
	}
	c.closing = true
	// [MQTT-3.14.0-1] only a 5.0 server sends DISCONNECT.
	if c.connected && c.version == mqtt.V5 && c.killCode != 0 {
		if b, err := (&mqtt.Disconnect{ReasonCode: c.killCode}).AppendTo(dst, mqtt.V5); err == nil {
			dst = b
		}
	}
	return dst, true
}

// Finish ends a driven Conn after its socket is closed: the session is
// detached and the broker told (with the will unless a DISCONNECT discarded
// it), and Done is closed. Call it once, after Connect (if it ran) returned.
func (c *Conn) Finish() {
	defer c.markDone()
	if c.Reason() == "" {
		c.Kill(0, ReasonEOF)
	}
	if n := len(c.out.Take()); n > 0 {
		c.cfg.QueueDepth(-n, 0) // discarded
	}
	if !c.connected {
		return
	}
	c.st.detach(c)
	will := c.will
	if c.graceful {
		will = nil // [MQTT-3.1.2-10] DISCONNECT removes the will
	}
	c.hub.Closed(c, c.st, will)
}
