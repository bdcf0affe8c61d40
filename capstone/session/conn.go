// Package session is the per-client MQTT state machine of the Floodgate
// broker, built on chapter 3's codec (floodgate/ch03-networking/03-mqtt):
// CONNECT and its checks, keepalive, QoS 0/1/2 with in-flight windows in
// both directions, topic aliases, maximum packet sizes, message expiry,
// wills, and the bookkeeping of a session that outlives its connection
// (State). The broker's registry of sessions, takeover and expiry sit behind
// the Hub interface.
//
// One state machine serves both connection engines. The goroutine engine
// makes a Conn with NewConn and runs Serve: a reader loop on the engine's
// goroutine, and a writer that Serve starts and stops, which drains the
// connection's bounded outbound queue (floodgate/capstone/queue). An event
// loop makes a Conn with NewDriven and drives it with bytes as they arrive
// (see driven.go): Connect, Feed, Output, Finish. Either way any goroutine
// may hand the Conn a packet (it never blocks) or Kill it.
package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"floodgate/capstone/admission"
	"floodgate/capstone/queue"
	"floodgate/capstone/router"
	mqtt "floodgate/ch03-networking/03-mqtt"
)

// The reasons a connection ends, as counted by Hub.Count. Each names the
// counter "disconnect_<reason>".
const (
	ReasonNormal         = "normal"            // client DISCONNECT
	ReasonEOF            = "eof"               // socket closed without DISCONNECT
	ReasonConnectTimeout = "connect_timeout"   // no CONNECT in time (slowloris)
	ReasonKeepAlive      = "keepalive_timeout" // nothing for 1.5 x keepalive (half-open)
	ReasonMalformed      = "malformed_packet"  // 0x81
	ReasonProtocol       = "protocol_error"    // 0x82
	ReasonSecondConnect  = "second_connect"    // 0x82 [MQTT-3.1.0-2]
	ReasonNotConnect     = "first_not_connect" // [MQTT-3.1.0-1]
	ReasonProtocolName   = "protocol_name"     // [MQTT-3.1.2-1]
	ReasonBadVersion     = "unsupported_version"
	ReasonBadClientID    = "client_id_rejected"
	ReasonTooLarge       = "packet_too_large" // 0x95
	ReasonReceiveMax     = "receive_maximum_exceeded"
	ReasonTopicAlias     = "topic_alias_invalid"
	ReasonTakenOver      = "session_taken_over" // 0x8E
	ReasonSlowConsumer   = queue.SlowConsumer   // outbound queue full
	ReasonShutdown       = "server_shutdown"    // 0x8B
	ReasonWriteError     = "write_error"
	ReasonRefused        = "refused" // CONNACK with a failure code (see admission counters)
)

// Hub is what a connection needs from the broker.
type Hub interface {
	// Open finds or makes the session for client id, closing and waiting
	// for any connection that holds it [MQTT-3.1.4-2]; clean discards an
	// existing one [MQTT-3.1.2-4]. present is CONNACK's Session Present.
	// c may be Killed (taken over) as soon as Open has made it the owner:
	// the Kill then takes effect once c's CONNACK is queued, so the
	// client hears CONNACK before DISCONNECT [MQTT-3.2.0-1].
	Open(c *Conn, id string, clean bool) (st *State, present bool)
	// Route delivers m to its subscribers and reports whether any matched.
	Route(m *router.Message) bool
	// Router is the broker's router, for subscriptions and retained messages.
	Router() *router.Router
	// Retain stores m as its topic's retained message (or clears it).
	Retain(m *router.Message)
	// Changed runs after a SUBSCRIBE or UNSUBSCRIBE changed st's
	// subscriptions, so the broker can persist them.
	Changed(c *Conn, st *State)
	// Closed runs once, after c's writer stopped, for a Conn that had a
	// session. will is the will to publish (nil: none) [MQTT-3.1.2-8].
	Closed(c *Conn, st *State, will *mqtt.Will)
	// Count adds one to the named counter. It may be called with a
	// session's lock held, so it takes none of the broker's locks.
	Count(name string)
}

// Config sets a connection's limits. The broker fills the defaults; the
// zero value works.
type Config struct {
	MaxPacketSize  int    // inbound limit, advertised in CONNACK; 0: 1 MiB
	ReceiveMaximum uint16 // inbound QoS 2 in flight, advertised; 0: 64
	MaxInflight    int    // outbound window (also capped by the client's Receive Maximum); 0: 64
	// MaxQueued caps, in packets, the outbound queue (a backstop behind
	// MaxQueuedBytes; 0: 16,384) and the QoS 1/2 messages a session keeps
	// beyond the in-flight window (0: 1,000; see NewState).
	MaxQueued int
	// MaxQueuedBytes is each connection's outbound budget: the encoded
	// size of the packets queued and not yet written (0: 1 MiB; negative:
	// none, MaxQueued alone). A client that lets its queue go over it is
	// disconnected as a slow consumer (ReasonSlowConsumer, 0x97), and the
	// limit that tripped is counted ("slow_consumer_bytes" or
	// "slow_consumer_packets"; "slow_consumer_pending" when the QoS 1/2
	// messages beyond the window reach MaxQueued). A burst of small
	// messages to a client that keeps reading fits in it; a client that
	// stops reading fills it.
	MaxQueuedBytes    int
	TopicAliasMaximum uint16        // inbound topic aliases accepted, advertised; 0: none
	ConnectTimeout    time.Duration // time for the CONNECT to arrive; 0: 10s
	WriteTimeout      time.Duration // time for one write; 0: 10s
	MaxKeepAlive      uint16        // seconds; 0: the client's value stands
	MaxSessionExpiry  uint32        // seconds; 0: no cap
	Admission         *admission.Admitter
	Logger            *slog.Logger
	// QueueDepth, if set, is told each change of a connection's outbound
	// queue: delta packets (+1 on a push, minus the packets written or
	// discarded), and after a push the queue's new depth. It is called
	// with a session's lock held, so it must only update counters.
	QueueDepth func(delta, depth int)
	// StoreBusy, if set, reports that the store's queue is full. A
	// CONNECT whose session the store would keep (a Session Expiry above
	// 0, or a 3.1.1 connect without Clean Session) is then refused with
	// 0x97 Quota exceeded (3.1.1: 3 Server unavailable), counted
	// "refused_store_busy": opening such a session queues its record, so a
	// client reconnecting in a loop could otherwise grow the queue
	// without bound. A session that ends with its connection writes
	// nothing and is still accepted.
	StoreBusy func() bool
}

// Defaults sets cfg's zero fields to their defaults, as NewConn and
// NewDriven do. A Config so filled before it is shared may be given to
// any number of NewConn and NewDriven calls at once, with no copy per
// connection: they only read it.
func (cfg *Config) Defaults() { cfg.fill() }

func (cfg *Config) fill() {
	if cfg.MaxPacketSize <= 0 {
		cfg.MaxPacketSize = mqtt.DefaultMaxPacketSize
	}
	if cfg.ReceiveMaximum == 0 {
		cfg.ReceiveMaximum = 64
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 64
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Admission == nil {
		cfg.Admission, _ = admission.New(admission.Config{})
	}
	if cfg.QueueDepth == nil {
		cfg.QueueDepth = func(int, int) {}
	}
}

// closeErr ends a connection with a reason code (sent in DISCONNECT to a
// 5.0 client) and a counter name.
type closeErr struct {
	code   mqtt.ReasonCode
	reason string
}

func (e *closeErr) Error() string { return fmt.Sprintf("%s (%v)", e.reason, e.code) }

func closeWith(code mqtt.ReasonCode, reason string) error { return &closeErr{code, reason} }

// Conn is one client connection. Make it with NewConn and run Serve, or
// with NewDriven for an event loop. It is one allocation: the outbound
// queue is held by value, and nothing else is made until it is needed
// (Done's channel, the goroutine engine's reader and wake-up channel, the
// topic alias maps), so an idle subscribed connection costs little.
type Conn struct {
	cfg *Config
	hub Hub
	nc  net.Conn     // nil for a driven Conn
	r   *mqtt.Reader // nil for a driven Conn

	// Set while the CONNECT is handled, before the writer starts and
	// before the Conn is attached to a State; read-only afterwards.
	id, username  string
	window        int
	will          *mqtt.Will
	st            *State
	ext           *extAuth // extended authentication (auth.go); nil: none. Reader only
	maxOut        uint32   // client's Maximum Packet Size, 0: none
	sessionExpiry uint32   // read and written by the reader goroutine only
	keepAlive     uint16
	aliasOut      uint16 // client's Topic Alias Maximum
	version       mqtt.Version
	refuse        mqtt.ReasonCode

	// Driven (event-loop) Conns only, loop side.
	connected bool // Connect succeeded (loop side, after Connect returned)
	graceful  bool // the client's DISCONNECT discards the will (Feed)
	closing   bool // Output has reported the end

	killCode mqtt.ReasonCode // written once, before killed is set
	stage    killStage       // how far Kill has gone (and whether a CONNACK is due); guarded by mu
	finished bool            // the connection has ended, Closed included; guarded by mu
	killed   atomic.Bool     // Kill has taken effect: killCode and killWhy are set
	mu       sync.Mutex      // guards stage, finished and done; held through Kill's work
	done     chan struct{}   // made by Done; closed once finished
	killWhy  string

	out queue.Queue[mqtt.Packet] // Init'd by NewConn; its own lock

	lim       admission.Limits
	inAliases map[uint16]string // reader goroutine only
	outAlias  map[string]uint16 // writer goroutine only

	// Driven (event-loop) Conns only; nil nc.
	wake func() // told of output and of Kill; never blocks
}

// closedChan is what Done returns once a connection has finished and no
// one had asked for its channel before.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// NewConn returns a connection on nc. refuse is the admission verdict on the
// connection (Success, or the code its CONNACK must carry). cfg's zero
// fields are set to their defaults; a Config already filled that way (by
// an earlier NewConn or NewDriven) is only read, so many Conns may share
// one.
func NewConn(cfg *Config, hub Hub, nc net.Conn, refuse mqtt.ReasonCode) *Conn {
	c := newConn(cfg, hub, refuse)
	c.nc = nc
	c.r = mqtt.NewReader(nc, mqtt.Config{MaxPacketSize: cfg.MaxPacketSize})
	return c
}

func newConn(cfg *Config, hub Hub, refuse mqtt.ReasonCode) *Conn {
	cfg.fill()
	c := &Conn{cfg: cfg, hub: hub, refuse: refuse}
	c.out.Init(cfg.MaxQueued, cfg.MaxQueuedBytes)
	return c
}

// ClientID returns the client identifier (after CONNECT).
func (c *Conn) ClientID() string { return c.id }

// Version returns the protocol version (after CONNECT).
func (c *Conn) Version() mqtt.Version { return c.version }

// SessionExpiry returns the session expiry interval in seconds that applies
// when the connection ends (math.MaxUint32: never).
func (c *Conn) SessionExpiry() uint32 { return c.sessionExpiry }

// Done is closed when the connection has finished: Serve has returned, or
// Finish has run for a driven Conn (Hub.Closed included, either way).
func (c *Conn) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.finished {
			return closedChan
		}
		c.done = make(chan struct{}) // only a waiter (a takeover) pays for it
	}
	return c.done
}

// markDone closes Done's channel, if one was made, and makes later calls
// of Done return a closed one.
func (c *Conn) markDone() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finished = true
	if c.done != nil {
		close(c.done)
	}
}

// Reason returns why the connection ended ("" while it runs).
func (c *Conn) Reason() string {
	if c.killed.Load() {
		return c.killWhy
	}
	return ""
}

// Kill ends the connection: a 5.0 client is sent DISCONNECT with code when
// code is not Success (after the packets already queued, unless reason is
// ReasonSlowConsumer), then the socket closes. Only the first call counts.
// Kill never blocks. A Kill that comes while the CONNACK is due (from
// Hub.Open until the CONNACK is queued: a takeover racing the CONNECT)
// is counted at once and takes effect right after the CONNACK is queued,
// so a client never hears DISCONNECT without a CONNACK before it
// [MQTT-3.2.0-1]; until then Reason is "".
func (c *Conn) Kill(code mqtt.ReasonCode, reason string) { c.kill(code, reason, "") }

// kill is Kill; also is a counter counted with the disconnect, if this
// call ends the connection.
func (c *Conn) kill(code mqtt.ReasonCode, reason, also string) {
	// A second call waits for the first to finish, as with a sync.Once.
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stage >= killDeferred {
		return
	}
	c.killCode, c.killWhy = code, reason
	// Counted before the socket closes, so whoever sees the close sees
	// the count.
	if also != "" {
		c.hub.Count(also)
	}
	c.hub.Count("disconnect_" + reason)
	if c.stage == connackDue {
		c.stage = killDeferred // connackQueued stops c, behind its CONNACK
		return
	}
	c.stage = killStopped
	c.stop()
}

// killStage is how far a Conn is in being killed (Conn.stage). A Kill that
// comes while the CONNACK is due waits for it to be queued.
type killStage uint8

const (
	notKilled    killStage = iota
	connackDue             // not killed; Hub.Open may have made c the owner, the CONNACK is not queued yet
	killDeferred           // killed while the CONNACK was due: counted, not stopped yet
	killStopped            // killed and stopped
)

// stop makes a Kill take effect: Reason, the queue closed, the socket's
// reader and writer cut short, the loop woken. c.mu is held.
func (c *Conn) stop() {
	c.killed.Store(true)
	c.out.Close() // wakes the goroutine engine's writer
	// Cut short a write stuck on a client that does not read, and
	// wake the reader (it may be waiting for a CONNECT, with no writer
	// yet to close the socket).
	if c.nc != nil {
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		_ = c.nc.SetReadDeadline(time.Now())
	}
	if c.wake != nil {
		c.wake()
	}
}

// markConnackDue marks the CONNACK due, before Hub.Open may make c its
// session's owner, and reports true; or it reports false for a connection
// already killed (a shutdown while its CONNECT was handled), which must
// then open no session and get no CONNACK.
func (c *Conn) markConnackDue() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stage != notKilled {
		return false
	}
	c.stage = connackDue
	return true
}

// connackQueued runs once the CONNACK is queued (or refused by the queue):
// a Kill that came while it was due takes effect now, behind it.
func (c *Conn) connackQueued() {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.stage {
	case connackDue:
		c.stage = notKilled
	case killDeferred:
		c.stage = killStopped
		c.stop()
	}
}

// send queues p for the writer. A queue over its bytes budget or its
// packet cap makes the client a slow consumer; the limit is counted.
func (c *Conn) send(p mqtt.Packet) {
	switch err := c.out.Push(p, queuedSize(p)); {
	case err == nil:
		c.cfg.QueueDepth(1, c.out.Len())
		if c.wake != nil {
			c.wake()
		}
	case errors.Is(err, queue.ErrOverBudget), errors.Is(err, queue.ErrFull):
		c.kill(mqtt.QuotaExceeded, ReasonSlowConsumer, slowConsumerLimit(err))
	}
}

// slowConsumerLimit names the counter of the queue limit err reports.
func slowConsumerLimit(err error) string {
	if errors.Is(err, queue.ErrOverBudget) {
		return ReasonSlowConsumer + "_bytes"
	}
	return ReasonSlowConsumer + "_packets"
}

// queuedSize is what p counts against the outbound bytes budget: its
// encoded size, estimated without encoding (a PUBLISH's topic, payload and
// the properties that can be large; a few bytes for any other packet).
func queuedSize(p mqtt.Packet) int {
	const header = 5 // fixed header, remaining length, packet id
	pub, ok := p.(*mqtt.Publish)
	if !ok {
		return header
	}
	pr := &pub.Properties
	n := header + 2 + len(pub.Topic) + len(pub.Payload) +
		len(pr.ContentType) + len(pr.ResponseTopic) + len(pr.CorrelationData) + 4*len(pr.SubscriptionIDs)
	for _, u := range pr.User {
		n += 4 + len(u.Key) + len(u.Value)
	}
	return n
}

// Serve runs the connection until it ends and returns the reason. It reads
// the CONNECT within ConnectTimeout, answers it, then reads and handles
// packets; it closes nc before returning. ctx ending kills the connection
// with 0x8B Server shutting down.
func (c *Conn) Serve(ctx context.Context) string {
	defer c.markDone()
	stop := context.AfterFunc(ctx, func() { c.Kill(mqtt.ServerShuttingDown, ReasonShutdown) })
	defer stop()
	err := c.connect()
	if err != nil {
		var ce *closeErr
		if !errors.As(err, &ce) {
			ce = &closeErr{mqtt.UnspecifiedError, ReasonEOF}
		}
		c.Kill(0, ce.reason)
		c.nc.Close()
		return ce.reason
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.writeLoop() }()
	c.st.attach(c)
	graceful := c.readLoop()
	wg.Wait()
	c.st.detach(c)
	will := c.will
	if graceful {
		will = nil // [MQTT-3.1.2-10] DISCONNECT removes the will
	}
	c.hub.Closed(c, c.st, will)
	return c.killWhy
}

// readLoop reads and handles packets until the connection ends; it reports
// whether the client ended it with a DISCONNECT that discards the will.
func (c *Conn) readLoop() (graceful bool) {
	for {
		if c.keepAlive > 0 {
			// [MQTT-3.1.2-24] close after one and a half keepalives of silence.
			_ = c.nc.SetReadDeadline(time.Now().Add(time.Duration(c.keepAlive) * 1500 * time.Millisecond))
		} else {
			_ = c.nc.SetReadDeadline(time.Time{})
		}
		h, body, err := c.r.Next()
		var p mqtt.Packet
		if err == nil {
			p, err = mqtt.DecodePacket(h, body, c.version)
		}
		if err == nil {
			err = c.handle(p)
		}
		if err == nil {
			continue
		}
		return c.end(err)
	}
}

// end kills the connection for err, the error that ended its reads or its
// handling of a packet, with the matching reason; it reports whether the
// client ended it with a DISCONNECT that discards the will.
func (c *Conn) end(err error) (graceful bool) {
	var ce *closeErr
	var ne net.Error
	switch {
	case errors.Is(err, errDisconnect):
		c.Kill(0, ReasonNormal)
		return true
	case errors.Is(err, errDisconnectWithWill):
		c.Kill(0, ReasonNormal)
		return false
	case errors.As(err, &ce):
		c.Kill(ce.code, ce.reason)
	case c.Reason() != "":
		// Killed from elsewhere (takeover, slow consumer, shutdown).
	case errors.As(err, &ne) && ne.Timeout():
		c.Kill(mqtt.KeepAliveTimeout, ReasonKeepAlive)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		c.Kill(0, ReasonEOF)
	default:
		code := mqtt.CodeOf(err)
		c.Kill(code, reasonOf(code))
	}
	c.cfg.Logger.Debug("connection ends", "client", c.id, "reason", c.killWhy, "err", err)
	return false
}

// reasonOf names the counter of a codec error's reason code.
func reasonOf(code mqtt.ReasonCode) string {
	switch code {
	case mqtt.MalformedPacket:
		return ReasonMalformed
	case mqtt.PacketTooLarge:
		return ReasonTooLarge
	case mqtt.TopicAliasInvalid:
		return ReasonTopicAlias
	case mqtt.ProtocolError:
		return ReasonProtocol
	}
	return ReasonMalformed
}

// writeLoop writes queued packets until Kill, then the DISCONNECT for a 5.0
// client, then closes the socket. The first write error kills the
// connection.
func (c *Conn) writeLoop() {
	defer func() {
		if n := len(c.out.Drain(nil)); n > 0 {
			c.cfg.QueueDepth(-n, 0) // discarded
		}
		if c.Reason() == ReasonSlowConsumer {
			// Discard what the socket still holds for a client that does
			// not read: reset rather than drain.
			if tc, ok := c.nc.(interface{ SetLinger(int) error }); ok {
				_ = tc.SetLinger(0)
			}
		}
		c.nc.Close()
	}()
	var items []mqtt.Packet
	var buf []byte
	write := func() bool {
		items = c.out.Drain(items[:0])
		if len(items) > 0 {
			c.cfg.QueueDepth(-len(items), 0)
		}
		buf = buf[:0]
		for i, p := range items {
			buf = c.encode(buf, p)
			items[i] = nil
		}
		if len(buf) == 0 {
			return true
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
		if _, err := c.nc.Write(buf); err != nil {
			c.Kill(0, ReasonWriteError)
			return false
		}
		return true
	}
	ready := c.out.Ready()
	for {
		<-ready
		// Kill sets killWhy, then closes the queue, which leaves a token.
		if !c.out.Closed() {
			if !write() {
				return
			}
		} else {
			if c.killWhy == ReasonSlowConsumer {
				return
			}
			if write() {
				// [MQTT-3.14.0-1] only a 5.0 server sends DISCONNECT.
				if c.version == mqtt.V5 && c.killCode != 0 {
					buf, err := (&mqtt.Disconnect{ReasonCode: c.killCode}).AppendTo(nil, mqtt.V5)
					if err == nil {
						_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
						_, _ = c.nc.Write(buf)
					}
				}
			}
			return
		}
	}
}

// encode appends p, applying an outbound topic alias to a 5.0 PUBLISH when
// the client allows them, and checks the size of the packet actually sent
// against the client's Maximum Packet Size [MQTT-3.1.2-25] (see
// encodePublish).
func (c *Conn) encode(buf []byte, p mqtt.Packet) []byte {
	if pub, ok := p.(*mqtt.Publish); ok && (c.aliasOut > 0 || c.maxOut > 0) {
		return c.encodePublish(buf, pub)
	}
	out, err := p.AppendTo(buf, c.version)
	if err != nil {
		c.cfg.Logger.Warn("cannot encode a packet", "client", c.id, "type", p.Type(), "err", err)
		return buf
	}
	return out
}

// encodePublish appends pub as it goes on the wire: with the topic replaced
// by the alias the client already knows (MQTT 5.0 section 3.3.2.3.4), or
// with the topic and a new alias while the client's Topic Alias Maximum
// leaves room, or as it is. The size checked against the client's Maximum
// Packet Size is that of those very bytes [MQTT-3.1.2-25]: a new alias costs
// three bytes, so a PUBLISH that fits only without it goes without it (the
// alias is not spent), and one that fits in no form is not sent: it is
// counted "too_large_for_client" and, at QoS 1/2, acknowledged in the
// session as if delivered, so it leaves the in-flight window and the store.
// Only the writer (or the driven Conn's Output) calls it.
func (c *Conn) encodePublish(buf []byte, pub *mqtt.Publish) []byte {
	cp := *pub
	topic := string(pub.Topic)
	a, known := c.outAlias[topic]
	switch {
	case known:
		cp.Topic = nil // the alias alone names the topic
		cp.Properties.TopicAlias = a
	case len(c.outAlias) < int(c.aliasOut):
		a = uint16(len(c.outAlias) + 1)
		cp.Properties.TopicAlias = a
	}
	out, err := cp.AppendTo(buf, c.version)
	if err == nil && cp.Properties.TopicAlias != 0 && !c.within(len(out)-len(buf)) {
		// Too large with the alias: try the topic name alone. A new
		// alias's three bytes may be too many; and a known alias is the
		// larger form for a topic under three bytes. The alias, new or
		// known, is then not spent or changed.
		cp.Topic, cp.Properties.TopicAlias, known = pub.Topic, 0, false
		out, err = cp.AppendTo(buf, c.version)
	}
	if err != nil {
		c.cfg.Logger.Warn("cannot encode a packet", "client", c.id, "type", pub.Type(), "err", err)
		return buf
	}
	if !c.within(len(out) - len(buf)) {
		// [MQTT-3.1.2-25] too large for the client even in its smallest
		// form: discard it as if it had been delivered.
		c.hub.Count("too_large_for_client")
		switch pub.QoS {
		case mqtt.AtLeastOnce:
			c.st.ack(mqtt.PUBACK, pub.PacketID, mqtt.Success)
		case mqtt.ExactlyOnce:
			c.st.ack(mqtt.PUBREC, pub.PacketID, mqtt.UnspecifiedError)
		}
		return buf
	}
	if !known && cp.Properties.TopicAlias != 0 {
		if c.outAlias == nil {
			c.outAlias = make(map[string]uint16)
		}
		c.outAlias[topic] = a
	}
	return out
}

// within reports whether a packet of n bytes is within the client's
// Maximum Packet Size.
func (c *Conn) within(n int) bool { return c.maxOut == 0 || n <= int(c.maxOut) }

// writeNow writes p directly, encoded for v: for CONNACK refusals and
// AUTH, before the writer runs. A driven Conn queues it, encoded, for
// Output.
func (c *Conn) writeNow(p mqtt.Packet, v mqtt.Version) {
	buf, err := p.AppendTo(nil, v)
	if err != nil {
		return
	}
	if c.nc == nil {
		if c.out.Push(encoded(buf), len(buf)) == nil {
			c.cfg.QueueDepth(1, c.out.Len())
		}
		return
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
	_, _ = c.nc.Write(buf)
}

// encoded is a packet already encoded (writeNow's, for a driven Conn): its
// AppendTo appends its bytes whatever the version.
type encoded []byte

func (e encoded) AppendTo(dst []byte, _ mqtt.Version) ([]byte, error) { return append(dst, e...), nil }
func (e encoded) Decode(mqtt.FixedHeader, []byte, mqtt.Version) error { return errEncoded }
func (e encoded) Type() mqtt.PacketType {
	if len(e) == 0 {
		return 0
	}
	return mqtt.PacketType(e[0] >> 4)
}

var errEncoded = errors.New("session: an encoded packet is not decoded")

// buildPublish makes the PUBLISH of a delivery for this connection. s.mu of
// the session is held; it reads only fields fixed at CONNECT.
func (c *Conn) buildPublish(p pendingMsg, now time.Time) *mqtt.Publish {
	m := p.m
	pub := publishPool.Get().(*mqtt.Publish) // zeroed; a driven Conn's Output returns QoS 0 ones
	*pub = mqtt.Publish{QoS: p.qos, Retain: p.retained, Topic: []byte(m.Topic), Payload: m.Payload}
	if c.version == mqtt.V5 {
		pub.Properties = m.Props                  // shared slices, never written
		pub.Properties.SubscriptionIDs = p.subIDs // [MQTT-3.3.4-3]
		if !m.Expires.IsZero() {
			// [MQTT-3.3.2-6] the expiry sent is what is left of it.
			left := max(1, uint32((m.Expires.Sub(now)+time.Second-1)/time.Second))
			pub.Properties.MessageExpiry = left
		}
	}
	return pub
}

// fits reports whether pub can be within the client's Maximum Packet Size
// in the smallest form encodePublish may send it: with its topic name, or,
// when the client accepts aliases, with the topic replaced by an alias (a
// topic of 0 bytes and a 3-byte Topic Alias property: the smaller form
// for a topic of three bytes or more). It is the session's early check,
// before a packet id is spent; encodePublish checks the bytes actually
// sent [MQTT-3.1.2-25].
func (c *Conn) fits(pub *mqtt.Publish) bool {
	if c.maxOut == 0 {
		return true
	}
	cp := *pub
	cp.PacketID = 1 // its size is what matters here
	if b, err := cp.AppendTo(nil, c.version); err == nil && len(b) <= int(c.maxOut) {
		return true
	}
	if c.aliasOut == 0 {
		return false
	}
	cp.Topic = nil
	cp.Properties.TopicAlias = 1
	b, err := cp.AppendTo(nil, c.version)
	return err == nil && len(b) <= int(c.maxOut)
}

func newClientID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "fg-" + hex.EncodeToString(b[:])
}
