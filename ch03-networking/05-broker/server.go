package broker

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"time"

	mqtt "floodgate/ch03-networking/03-mqtt"
	topics "floodgate/ch03-networking/04-topics"
)

// errQoS2 carries the reason code a 5.0 client gets in DISCONNECT when it
// publishes at QoS 2 anyway.
var errQoS2 = &mqtt.Error{Code: mqtt.QoSNotSupported, Msg: "QoS 2 is not supported"}

// New returns a Broker with cfg's defaults filled in. It returns an error
// wrapping ErrBadConfig for a negative field.
func New(cfg Config) (*Broker, error) {
	if cfg.MaxPacketSize < 0 || cfg.ConnectTimeout < 0 || cfg.WriteTimeout < 0 || cfg.MaxQueued < 0 {
		return nil, fmt.Errorf("new broker: %w: negative limit in %+v", ErrBadConfig, cfg)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.MaxQueued == 0 {
		cfg.MaxQueued = 1000
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Broker{
		cfg: cfg, log: log,
		sessions:  make(map[string]*session),
		conns:     make(map[*conn]struct{}),
		listeners: make(map[net.Listener]struct{}),
		retained:  make(map[string]*message),
	}, nil
}

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats { return Stats{Dropped: b.dropped.Load()} }

// Serve accepts connections on ln and serves each in its own goroutine until
// Close is called or Accept fails. It always returns a non-nil error:
// ErrClosed after Close. Serve does not close ln on an Accept error; Close
// closes it.
func (b *Broker) Serve(ln net.Listener) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.listeners[ln] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()
	defer b.wg.Done()
	for {
		nc, err := ln.Accept()
		b.mu.Lock()
		closed := b.closed
		if err == nil && !closed {
			b.wg.Add(1)
		}
		b.mu.Unlock()
		switch {
		case closed:
			if nc != nil {
				nc.Close()
			}
			return ErrClosed
		case err != nil:
			return fmt.Errorf("broker: accept: %w", err)
		}
		go func() {
			defer b.wg.Done()
			b.ServeConn(nc)
		}()
	}
}

// Close closes every listener and connection and waits until each Serve and
// ServeConn has returned. Wills of the closed connections are published
// (to nobody online, since every connection is closing). Close is idempotent.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	lns, conns := make([]net.Listener, 0, len(b.listeners)), make([]*conn, 0, len(b.conns))
	for ln := range b.listeners {
		lns = append(lns, ln)
	}
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
	for _, c := range conns {
		c.close()
	}
	b.wg.Wait()
	return nil
}

// ServeConn serves one MQTT connection of any kind (TCP, TLS, or a WebSocket
// adapted to net.Conn) in the caller's goroutine, and returns when the
// connection ends. It closes nc. After Close it closes nc at once.
func (b *Broker) ServeConn(nc net.Conn) {
	c := &conn{nc: nc, writeTimeout: b.cfg.WriteTimeout, done: make(chan struct{})}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		nc.Close()
		return
	}
	b.conns[c] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()
	err := b.serve(c)
	c.close()
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
	close(c.done)
	b.wg.Done()
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		b.log.Debug("connection closed", "remote", nc.RemoteAddr(), "err", err)
	}
}

// serve runs one connection: CONNECT, then packets until the end.
func (b *Broker) serve(c *conn) error {
	r := mqtt.NewReader(c.nc, mqtt.Config{MaxPacketSize: b.cfg.MaxPacketSize})
	c.nc.SetReadDeadline(time.Now().Add(b.cfg.ConnectTimeout))
	p, err := r.ReadPacket() // the Reader refuses anything but CONNECT first [MQTT-3.1.0-1]
	if err != nil {
		return fmt.Errorf("read CONNECT: %w", err)
	}
	cp := p.(*mqtt.Connect)
	c.version, c.keepAlive = cp.Version, cp.KeepAlive
	ack := &mqtt.Connack{}
	if w := cp.Will; w != nil {
		if err := topics.ValidateName(w.Topic); err != nil {
			ack.ReasonCode = mqtt.TopicNameInvalid
			c.write(ack)
			return fmt.Errorf("CONNECT will: %w", err)
		}
		c.will = &message{topic: w.Topic, payload: slices.Clone(w.Payload), qos: min(w.QoS, 1), retain: w.Retain}
	}
	id := cp.ClientID
	if id == "" {
		if c.version == mqtt.V311 && !cp.CleanStart {
			ack.ReasonCode = mqtt.ClientIdentifierNotValid // [MQTT-3.1.3-8]
			c.write(ack)
			return errors.New("CONNECT: empty client id with a persistent session")
		}
		b.mu.Lock()
		b.nextID++
		id = "floodgate-" + strconv.FormatUint(b.nextID, 10) // [MQTT-3.1.3-6]
		b.mu.Unlock()
		ack.Properties.AssignedClientID = id // sent in 5.0 only [MQTT-3.2.2-16]
	}
	persistent := !cp.CleanStart
	if c.version == mqtt.V5 {
		persistent = cp.Properties.SessionExpiry > 0 // 0: the session ends with the connection
	}
	s, present := b.openSession(c, id, cp.CleanStart, persistent)
	if s == nil {
		ack.ReasonCode = mqtt.ServerUnavailable
		c.write(ack)
		return errors.New("CONNECT: no session (openSession is not written yet)")
	}
	ack.SessionPresent = present
	if c.version == mqtt.V5 {
		ack.Properties.MaximumQoS = 1
		ack.Properties.Mark(mqtt.PropMaximumQoS)
		ack.Properties.SharedSubAvailable = 0
		ack.Properties.Mark(mqtt.PropSharedSubAvailable)
	}
	// CONNACK goes out under s.mu, so that no delivery can overtake it and
	// none published after the client sees it can miss the connection.
	s.mu.Lock()
	err = c.write(ack)
	if err == nil {
		s.conn = c
		s.redeliver()
	}
	s.mu.Unlock()
	if err != nil {
		b.closeConn(c, s, false)
		return err
	}

	for {
		if d := readTimeout(c.keepAlive); d > 0 {
			c.nc.SetReadDeadline(time.Now().Add(d))
		} else {
			c.nc.SetReadDeadline(time.Time{})
		}
		p, err := r.ReadPacket()
		if err == nil {
			var graceful bool
			if graceful, err = b.handle(c, s, p); graceful || err == nil {
				if graceful {
					b.detach(c, s)
					b.closeConn(c, s, true)
					return nil
				}
				continue
			}
		}
		if c.version == mqtt.V5 && errors.As(err, new(*mqtt.Error)) {
			c.write(&mqtt.Disconnect{ReasonCode: mqtt.CodeOf(err)})
		}
		b.detach(c, s)
		b.closeConn(c, s, false)
		return err
	}
}

// handle acts on one packet after CONNECT. graceful reports a DISCONNECT
// that discards the will.
func (b *Broker) handle(c *conn, s *session, p mqtt.Packet) (graceful bool, err error) {
	switch p := p.(type) {
	case *mqtt.Publish:
		return false, b.handlePublish(c, p)
	case *mqtt.PubAck:
		s.mu.Lock()
		s.ack(p.PacketID)
		s.mu.Unlock()
		return false, nil
	case *mqtt.Subscribe:
		return false, b.handleSubscribe(c, s, p)
	case *mqtt.Unsubscribe:
		ack := &mqtt.UnsubAck{PacketID: p.PacketID, ReasonCodes: make([]mqtt.ReasonCode, len(p.Filters))}
		for i, f := range p.Filters {
			if ok, _ := b.subs.Unsubscribe(f, s); !ok {
				ack.ReasonCodes[i] = mqtt.NoSubscriptionExisted
			}
			s.mu.Lock()
			delete(s.filters, f)
			s.mu.Unlock()
		}
		return false, c.write(ack)
	case *mqtt.PingReq:
		return false, c.write(&mqtt.PingResp{})
	case *mqtt.Disconnect:
		// 5.0 lets the client ask for its will anyway (0x04).
		return p.ReasonCode != mqtt.DisconnectWithWillMessage, nil
	case *mqtt.Connect:
		return false, fmt.Errorf("%w: second CONNECT [MQTT-3.1.0-2]", mqtt.ErrProtocol)
	default:
		return false, fmt.Errorf("%w: unexpected %s from a client", mqtt.ErrProtocol, p.Type())
	}
}

func (b *Broker) handlePublish(c *conn, p *mqtt.Publish) error {
	if p.QoS > 1 { // CONNACK said Maximum QoS 1 to 5.0 clients
		return fmt.Errorf("PUBLISH QoS %d: %w: %w", p.QoS, ErrUnsupported, errQoS2)
	}
	m := &message{topic: string(p.Topic), payload: slices.Clone(p.Payload), qos: p.QoS, retain: p.Retain}
	if err := topics.ValidateName(m.topic); err != nil { // also an empty topic sent with an alias we never offered
		return fmt.Errorf("%w: PUBLISH: %w", mqtt.ErrTopicNameInvalid, err)
	}
	b.publish(m)
	if p.QoS == 1 {
		return c.write(&mqtt.PubAck{PacketID: p.PacketID}) // after routing: the message is ours now
	}
	return nil
}

// publish stores m if it is retained and sends it to every matching session.
func (b *Broker) publish(m *message) {
	if m.retain {
		b.retain(m)
	}
	for _, e := range b.subs.Match(m.topic, nil) {
		// A forwarded message is not marked retained [MQTT-3.3.1-9].
		e.Key.deliver(m, min(m.qos, e.Value), false)
	}
}

func (b *Broker) handleSubscribe(c *conn, s *session, p *mqtt.Subscribe) error {
	ack := &mqtt.SubAck{PacketID: p.PacketID, ReasonCodes: make([]mqtt.ReasonCode, len(p.Subscriptions))}
	isNew := make([]bool, len(p.Subscriptions))
	for i, sub := range p.Subscriptions {
		group, _, err := topics.ParseShare(sub.Filter)
		switch {
		case err != nil:
			ack.ReasonCodes[i] = mqtt.TopicFilterInvalid
		case group != "":
			ack.ReasonCodes[i] = mqtt.SharedSubscriptionsNotSupported
		default:
			q := min(sub.QoS, 1)
			replaced, _ := b.subs.Subscribe(sub.Filter, s, q) // replaces an identical filter [MQTT-3.8.4-3]
			s.mu.Lock()
			s.filters[sub.Filter] = q
			s.mu.Unlock()
			ack.ReasonCodes[i], isNew[i] = mqtt.ReasonCode(q), !replaced
			continue
		}
		if c.version == mqtt.V311 {
			ack.ReasonCodes[i] = mqtt.UnspecifiedError // 3.1.1 has one failure code, 0x80
		}
	}
	if err := c.write(ack); err != nil {
		return err
	}
	// Retained messages follow the SUBACK [MQTT-3.3.1-6], marked retained
	// [MQTT-3.3.1-8]. MQTT 5.0's Retain Handling can turn that off.
	for i, sub := range p.Subscriptions {
		if ack.ReasonCodes[i] > mqtt.GrantedQoS1 || sub.RetainHandling == 2 || (sub.RetainHandling == 1 && !isNew[i]) {
			continue
		}
		for _, m := range b.retainedFor(sub.Filter) {
			s.deliver(m, min(m.qos, mqtt.QoS(ack.ReasonCodes[i])), true)
		}
	}
	return nil
}

// detach stops deliveries to c, which is ending: from now on the session's
// QoS 1 messages wait in its queue.
func (b *Broker) detach(c *conn, s *session) {
	s.mu.Lock()
	if s.conn == c {
		s.conn = nil
	}
	s.mu.Unlock()
}

// newSession returns an empty session for id.
func (b *Broker) newSession(id string) *session {
	return &session{id: id, b: b, filters: make(map[string]mqtt.QoS)}
}

// dropSubscriptions removes every subscription of s, a session that has
// ended, from the trie.
func (b *Broker) dropSubscriptions(s *session) {
	s.mu.Lock()
	filters := make([]string, 0, len(s.filters))
	for f := range s.filters {
		filters = append(filters, f)
	}
	clear(s.filters)
	s.mu.Unlock()
	for _, f := range filters {
		b.subs.Unsubscribe(f, s)
	}
}

// deliver sends m to the session at qos. QoS 0 goes only to a connected
// client; QoS 1 goes through sendQoS1.
func (s *session) deliver(m *message, qos mqtt.QoS, retain bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if qos == 0 {
		if s.conn != nil {
			s.conn.writePublish(outbound{msg: m, retain: retain}, 0, false)
		}
		return
	}
	s.sendQoS1(outbound{msg: m, retain: retain})
}

// nextPacketID returns a packet identifier that no message in flight uses.
// s.mu must be held.
func (s *session) nextPacketID() uint16 {
	for {
		s.lastID++
		if s.lastID == 0 {
			continue // 0 is not a packet identifier [MQTT-2.3.1-1]
		}
		if !slices.ContainsFunc(s.inflight, func(o outbound) bool { return o.id == s.lastID }) {
			return s.lastID
		}
	}
}

// writePublish sends o as a PUBLISH at qos, with the DUP flag dup.
func (c *conn) writePublish(o outbound, qos mqtt.QoS, dup bool) error {
	return c.write(&mqtt.Publish{
		Dup: dup, QoS: qos, Retain: o.retain, PacketID: o.id,
		Topic: []byte(o.msg.topic), Payload: o.msg.payload,
	})
}

// write encodes p for the connection's version and writes it within the
// write timeout. A failed write closes the connection.
func (c *conn) write(p mqtt.Packet) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	buf, err := p.AppendTo(c.wbuf[:0], c.version)
	if err != nil {
		return fmt.Errorf("write %s: %w", p.Type(), err)
	}
	c.wbuf = buf
	c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	if _, err := c.nc.Write(buf); err != nil {
		c.close()
		return fmt.Errorf("write %s: %w", p.Type(), err)
	}
	return nil
}

// close closes the network connection; the connection's goroutine then
// fails its next read and ends. Safe to call more than once, from anywhere.
func (c *conn) close() { c.closeOnce.Do(func() { c.nc.Close() }) }
