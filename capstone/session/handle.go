package session

import (
	"bytes"
	"errors"
	"math"
	"net"
	"strings"
	"time"

	"floodgate/capstone/router"
	mqtt "floodgate/ch03-networking/03-mqtt"
	topics "floodgate/ch03-networking/04-topics"
	auth "floodgate/ch03-networking/07-auth"
)

var (
	errDisconnect         = errors.New("client sent DISCONNECT")
	errDisconnectWithWill = errors.New("client sent DISCONNECT 0x04")
)

// connect reads and answers the CONNECT. On success the Conn has its
// session (c.st) and a CONNACK queued; on failure the socket has had its
// refusal, if any, and must be closed.
func (c *Conn) connect() error {
	// A slowloris peer gets ConnectTimeout for its whole CONNECT; a
	// connection admission has refused gets at most a second to hear why.
	_ = c.nc.SetReadDeadline(time.Now().Add(c.ConnectTimeout()))
	h, body, err := c.r.Next()
	if err != nil {
		return connectReadErr(err)
	}
	err = c.connectStep(h, body)
	for errors.Is(err, ErrAuthContinue) {
		// Extended authentication (auth.go): the AUTH has been written;
		// the client's answer comes within the same deadline.
		if h, body, err = c.r.Next(); err != nil {
			return connectReadErr(err)
		}
		err = c.connectStep(h, body)
	}
	if err == nil {
		c.r.SetVersion(c.version)
	}
	return err
}

// ConnectTimeout is how long the connection may take to send its CONNECT:
// Config.ConnectTimeout, or at most a second for a connection admission
// refused (it only has to hear why).
func (c *Conn) ConnectTimeout() time.Duration {
	if c.refuse != mqtt.Success {
		return min(c.cfg.ConnectTimeout, time.Second)
	}
	return c.cfg.ConnectTimeout
}

// connectReadErr maps an error reading the first packet to its reason.
func connectReadErr(err error) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return closeWith(0, ReasonConnectTimeout)
	case errors.Is(err, mqtt.ErrPacketTooLarge):
		return closeWith(mqtt.PacketTooLarge, ReasonTooLarge)
	case errors.Is(err, mqtt.ErrMalformed):
		return closeWith(mqtt.MalformedPacket, ReasonMalformed)
	}
	return closeWith(0, ReasonEOF)
}

// connectPacket handles the first packet, which must be a CONNECT: on
// success the Conn has its session (c.st) and a CONNACK queued.
func (c *Conn) connectPacket(h mqtt.FixedHeader, body []byte) error {
	if h.Type != mqtt.CONNECT {
		// [MQTT-3.1.0-1] the first packet must be CONNECT.
		return closeWith(mqtt.ProtocolError, ReasonNotConnect)
	}
	if name, _, err := mqtt.DecodeString(body); err != nil || !bytes.Equal(name, []byte("MQTT")) {
		// [MQTT-3.1.2-1] a wrong protocol name: close, no CONNACK.
		return closeWith(mqtt.ProtocolError, ReasonProtocolName)
	}
	cp := new(mqtt.Connect)
	if err := cp.Decode(h, body, 0); err != nil {
		if errors.Is(err, mqtt.ErrUnsupportedVersion) {
			// [MQTT-3.1.2-2] CONNACK 0x01 (3.1.1) / 0x84 (5.0), then close.
			v := mqtt.V311
			if len(body) > 6 && body[6] == byte(mqtt.V5) {
				v = mqtt.V5
			}
			c.writeNow(&mqtt.Connack{ReasonCode: mqtt.UnsupportedProtocolVersion}, v)
			return closeWith(mqtt.UnsupportedProtocolVersion, ReasonBadVersion)
		}
		return closeWith(mqtt.CodeOf(err), reasonOf(mqtt.CodeOf(err)))
	}
	c.version = cp.Version
	if c.refuse != mqtt.Success {
		return c.refuseConnect(c.refuse, "admission")
	}
	if cp.Properties.AuthMethod != "" {
		// Extended authentication (MQTT 5.0 section 4.12): auth.go. A
		// client that names no method gets no AUTH and no method in its
		// CONNACK [MQTT-4.12.0-6].
		return c.startAuth(cp)
	}
	if code := c.cfg.Admission.Authenticate(cp); code != mqtt.Success {
		return c.refuseConnect(code, "credentials")
	}
	return c.accept(cp, &mqtt.Connack{})
}

// refuseConnect answers the CONNECT with a refusing CONNACK, counted
// "refused_<reason>", and returns the error that closes the connection.
func (c *Conn) refuseConnect(code mqtt.ReasonCode, reason string) error {
	// [MQTT-3.2.2-6] a refusing CONNACK has Session Present 0, and
	// [MQTT-3.2.2-7] the server closes the connection after it.
	c.writeNow(&mqtt.Connack{ReasonCode: code}, c.version)
	c.hub.Count("refused_" + reason)
	return closeWith(code, ReasonRefused)
}

// accept admits the authenticated CONNECT cp: on success the Conn has its
// session (c.st) and ack, completed, queued.
func (c *Conn) accept(cp *mqtt.Connect, ack *mqtt.Connack) error {
	refuse := c.refuseConnect
	c.id = cp.ClientID
	if c.id == "" {
		if c.version == mqtt.V311 && !cp.CleanStart {
			// [MQTT-3.1.3-8] 3.1.1: an empty id needs Clean Session.
			return refuse(mqtt.ClientIdentifierNotValid, "client_id")
		}
		// [MQTT-3.1.3-6] assign a unique id; [MQTT-3.2.2-16] say it (5.0).
		c.id = newClientID()
		if c.version == mqtt.V5 {
			ack.Properties.AssignedClientID = c.id
		}
	}
	if cp.HasUsername {
		c.username = cp.Username
	}
	if c.ext != nil {
		c.username = c.ext.user // the user the exchange proved
	}
	c.keepAlive = cp.KeepAlive
	if max := c.cfg.MaxKeepAlive; max > 0 && c.version == mqtt.V5 && (c.keepAlive == 0 || c.keepAlive > max) {
		// [MQTT-3.2.2-21] the client must use the Server Keep Alive.
		c.keepAlive = max
		ack.Properties.ServerKeepAlive = max
	}
	c.window = c.cfg.MaxInflight
	c.sessionExpiry = 0
	if c.version == mqtt.V5 {
		if rm := cp.Properties.ReceiveMaximum; rm > 0 {
			// [MQTT-3.3.4-7] never more unacknowledged QoS 1/2 PUBLISH
			// than the client's Receive Maximum.
			c.window = min(c.window, int(rm))
		}
		c.maxOut = cp.Properties.MaximumPacketSize
		c.aliasOut = cp.Properties.TopicAliasMaximum
		c.sessionExpiry = cp.Properties.SessionExpiry
	} else if !cp.CleanStart {
		c.sessionExpiry = math.MaxUint32 // a 3.1.1 session lasts until a clean connect
	}
	if m := c.cfg.MaxSessionExpiry; m > 0 && c.sessionExpiry > m {
		c.sessionExpiry = m
		if c.version == mqtt.V5 {
			ack.Properties.SessionExpiry = m
			ack.Properties.Mark(mqtt.PropSessionExpiry)
		}
	}
	c.will = cp.Will
	if c.will != nil && !c.cfg.Admission.Allow(c.id, c.username, c.will.Topic, auth.Write) {
		return refuse(mqtt.NotAuthorized, "will_acl")
	}
	if c.version == mqtt.V5 && cp.Properties.RequestResponseInfo == 1 {
		// MQTT 5.0 section 3.2.2.3.15: the basis for the client's response
		// topics, here one of its own.
		ack.Properties.ResponseInfo = "floodgate/response/" + c.id
	}
	if c.version == mqtt.V5 {
		ack.Properties.ReceiveMaximum = c.cfg.ReceiveMaximum
		ack.Properties.TopicAliasMaximum = c.cfg.TopicAliasMaximum
		ack.Properties.MaximumPacketSize = uint32(c.cfg.MaxPacketSize)
	}
	if c.sessionExpiry > 0 && c.cfg.StoreBusy != nil && c.cfg.StoreBusy() {
		return refuse(mqtt.QuotaExceeded, ReasonStoreBusy) // see Config.StoreBusy
	}
	if !c.markConnackDue() {
		return closeWith(0, c.Reason()) // killed meanwhile: no session, no CONNACK
	}
	// From here a takeover may find c the owner and Kill it: the Kill
	// waits for connackQueued, so the CONNACK goes first, before the
	// takeover's DISCONNECT [MQTT-3.2.0-1]. It is queued with send,
	// never held behind store commits (sendAfter): a takeover waits for
	// c to end, and c must not wait for the store to end.
	c.st, ack.SessionPresent = c.hub.Open(c, c.id, cp.CleanStart)
	c.send(ack) // the writer starts after this: CONNACK goes first [MQTT-3.2.0-1]
	c.connackQueued()
	return nil
}

// handle handles one packet after CONNECT. An error ends the connection.
func (c *Conn) handle(p mqtt.Packet) error {
	switch p := p.(type) {
	case *mqtt.Publish:
		return c.publish(p)
	case *mqtt.PubAck:
		c.st.ack(mqtt.PUBACK, p.PacketID, p.ReasonCode)
	case *mqtt.PubRec:
		c.st.ack(mqtt.PUBREC, p.PacketID, p.ReasonCode)
	case *mqtt.PubComp:
		c.st.ack(mqtt.PUBCOMP, p.PacketID, p.ReasonCode)
	case *mqtt.PubRel:
		from := c.st.mark()
		comp := &mqtt.PubComp{PacketID: p.PacketID}
		// The id's stored record is deleted even if memory has forgotten
		// it (a PUBREL resent after a failed delete): see released.
		if !c.st.released(p.PacketID, true) && c.version == mqtt.V5 {
			comp.ReasonCode = mqtt.PacketIdentifierNotFound
		}
		c.st.sendAfter(c, from, comp, nil) // [MQTT-4.3.3-11], once the release is durable
	case *mqtt.Subscribe:
		return c.subscribe(p)
	case *mqtt.Unsubscribe:
		from := c.st.mark()
		ack := &mqtt.UnsubAck{PacketID: p.PacketID}
		removed := false
		for _, f := range p.Filters {
			ok := c.st.unsubscribe(f)
			if ok {
				_, _ = c.hub.Router().Unsubscribe(c.id, f)
			}
			removed = removed || ok
			code := mqtt.Success
			if !ok {
				code = mqtt.NoSubscriptionExisted
			}
			ack.ReasonCodes = append(ack.ReasonCodes, code)
		}
		if removed {
			c.hub.Changed(c, c.st) // nothing to save (or queue) otherwise
		}
		c.st.sendAfter(c, from, ack, nil) // [MQTT-3.10.4-4], once the session is saved
	case *mqtt.PingReq:
		c.send(&mqtt.PingResp{}) // [MQTT-3.12.4-1]
	case *mqtt.Disconnect:
		if p.Properties.Has(mqtt.PropSessionExpiry) {
			if c.sessionExpiry == 0 && p.Properties.SessionExpiry != 0 {
				// [MQTT-3.14.2-2] zero at CONNECT cannot become non-zero.
				return closeWith(mqtt.ProtocolError, ReasonProtocol)
			}
			c.sessionExpiry = p.Properties.SessionExpiry
		}
		if p.ReasonCode == mqtt.DisconnectWithWillMessage {
			return errDisconnectWithWill
		}
		return errDisconnect
	case *mqtt.Connect:
		// [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
		return closeWith(mqtt.ProtocolError, ReasonSecondConnect)
	case *mqtt.Auth:
		return c.reauth(p) // auth.go
	default:
		// CONNACK, SUBACK, UNSUBACK, PINGRESP: not for a server.
		return closeWith(mqtt.ProtocolError, ReasonProtocol)
	}
	return nil
}

// publish handles an inbound PUBLISH.
func (c *Conn) publish(p *mqtt.Publish) error {
	topic := string(p.Topic)
	if c.version == mqtt.V5 {
		if a := p.Properties.TopicAlias; a > 0 {
			if a > c.cfg.TopicAliasMaximum {
				// [MQTT-3.3.2-9] an alias above our maximum: 0x94.
				return closeWith(mqtt.TopicAliasInvalid, ReasonTopicAlias)
			}
			if c.inAliases == nil {
				c.inAliases = make(map[uint16]string)
			}
			if topic != "" {
				c.inAliases[a] = topic
			} else if topic = c.inAliases[a]; topic == "" {
				// An alias never set names no topic: protocol error.
				return closeWith(mqtt.ProtocolError, ReasonTopicAlias)
			}
		}
	}
	if topic == "" {
		return closeWith(mqtt.ProtocolError, ReasonProtocol)
	}
	from := c.st.mark() // the acknowledgement waits for the changes made from here
	now := time.Now()
	if ok, reason := c.cfg.Admission.AllowPublish(&c.lim, now, len(p.Payload)); !ok {
		// 5.0: DISCONNECT 0x96 Message rate too high; 3.1.1: close.
		return closeWith(mqtt.MessageRateTooHigh, reason)
	}
	if p.QoS == mqtt.ExactlyOnce {
		isNew, n := c.st.receivedQoS2(p.PacketID)
		if !isNew {
			// [MQTT-4.3.3-9] a resent PUBLISH is acknowledged, not routed;
			// its record is written again, so the PUBREC waits for a
			// durable one even if the first write failed.
			c.st.routedQoS2(p.PacketID, topic)
			c.st.sendAfter(c, from, &mqtt.PubRec{PacketID: p.PacketID}, nil)
			return nil
		}
		if n > int(c.cfg.ReceiveMaximum) {
			// [MQTT-3.3.4-9] more QoS 2 in flight than our Receive Maximum.
			c.st.released(p.PacketID, false)
			return closeWith(mqtt.ReceiveMaximumExceeded, ReasonReceiveMax)
		}
	}
	if (p.QoS > mqtt.AtMostOnce || p.Retain) && c.st.busy() {
		// The store's queue is full: refuse new work rather than block
		// (an event loop must not) or grow without bound. QoS 0 may be
		// dropped; a 5.0 client hears 0x97 and may send it again later;
		// 3.1.1 has no refusal, so the connection closes and the client
		// resends its unacknowledged PUBLISH when it reconnects.
		c.hub.Count(ReasonStoreBusy)
		switch {
		case p.QoS == mqtt.AtMostOnce:
			return nil
		case p.QoS == mqtt.ExactlyOnce:
			c.st.unreceivedQoS2(p.PacketID) // never stored
		}
		if c.version != mqtt.V5 {
			return closeWith(mqtt.QuotaExceeded, ReasonStoreBusy)
		}
		var refusal mqtt.Packet = &mqtt.PubAck{PacketID: p.PacketID, ReasonCode: mqtt.QuotaExceeded}
		if p.QoS == mqtt.ExactlyOnce {
			refusal = &mqtt.PubRec{PacketID: p.PacketID, ReasonCode: mqtt.QuotaExceeded}
		}
		c.st.sendAfter(c, from, refusal, nil)
		return nil
	}
	code := mqtt.Success
	if strings.HasPrefix(topic, "$") {
		// Topics starting with '$' are the server's (MQTT 5.0 section
		// 4.7.2): a client may not publish to them.
		c.hub.Count("publish_to_dollar_topic")
		code = mqtt.NotAuthorized
	} else if !c.cfg.Admission.Allow(c.id, c.username, topic, auth.Write) {
		code = mqtt.NotAuthorized
	} else {
		m := &router.Message{Topic: topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, From: c.id}
		if c.version == mqtt.V5 {
			pr := &p.Properties
			m.Props = mqtt.Properties{PayloadFormat: pr.PayloadFormat, ContentType: pr.ContentType,
				ResponseTopic: pr.ResponseTopic, CorrelationData: pr.CorrelationData, User: pr.User}
			if pr.PayloadFormat != 0 {
				m.Props.Mark(mqtt.PropPayloadFormat)
			}
			if pr.Has(mqtt.PropMessageExpiry) {
				m.Expires = now.Add(time.Duration(pr.MessageExpiry) * time.Second)
			}
		}
		if p.Retain {
			c.hub.Retain(m) // [MQTT-3.3.1-5]
		}
		if !c.hub.Route(m) && c.version == mqtt.V5 {
			code = mqtt.NoMatchingSubscribers
		}
	}
	switch p.QoS {
	case mqtt.AtLeastOnce:
		// [MQTT-4.3.2-2], once the routed copies and the retained
		// message are durable.
		c.st.sendAfter(c, from, &mqtt.PubAck{PacketID: p.PacketID, ReasonCode: c.v5code(code)}, nil)
	case mqtt.ExactlyOnce:
		if code.IsError() {
			c.st.released(p.PacketID, false)
		} else {
			c.st.routedQoS2(p.PacketID, topic)
		}
		c.st.sendAfter(c, from, &mqtt.PubRec{PacketID: p.PacketID, ReasonCode: c.v5code(code)}, nil) // [MQTT-4.3.3-2]
	}
	return nil
}

func (c *Conn) v5code(code mqtt.ReasonCode) mqtt.ReasonCode {
	if c.version == mqtt.V5 {
		return code
	}
	return mqtt.Success
}

// subscribe handles SUBSCRIBE: SUBACK with one code per filter
// [MQTT-3.8.4-6], then the retained messages each new subscription asks for.
func (c *Conn) subscribe(p *mqtt.Subscribe) error {
	var subID uint32
	if len(p.Properties.SubscriptionIDs) > 0 {
		subID = p.Properties.SubscriptionIDs[0]
	}
	from := c.st.mark()
	ack := &mqtt.SubAck{PacketID: p.PacketID}
	if c.st.busy() {
		// The store's queue is full: each SUBSCRIBE would queue the
		// session's whole record, so refuse it rather than let a client
		// grow the queue without bound (0x97 Quota exceeded; 3.1.1: 0x80).
		c.hub.Count(ReasonStoreBusy)
		for range p.Subscriptions {
			ack.ReasonCodes = append(ack.ReasonCodes, c.failCode(mqtt.QuotaExceeded))
		}
		c.st.sendAfter(c, from, ack, nil)
		return nil
	}
	type retainedFor struct {
		sub  router.Sub
		msgs []*router.Message
	}
	var sends []retainedFor
	now := time.Now()
	for _, s := range p.Subscriptions {
		group, _, err := topics.ParseShare(s.Filter)
		switch {
		case err != nil:
			ack.ReasonCodes = append(ack.ReasonCodes, c.failCode(mqtt.TopicFilterInvalid))
			continue
		case group != "" && s.NoLocal:
			// [MQTT-3.8.3-4] No Local on a shared subscription.
			return closeWith(mqtt.ProtocolError, ReasonProtocol)
		case !c.cfg.Admission.Allow(c.id, c.username, s.Filter, auth.Read):
			ack.ReasonCodes = append(ack.ReasonCodes, c.failCode(mqtt.NotAuthorized))
			continue
		}
		sub := router.Sub{Filter: s.Filter, Group: group, QoS: s.QoS, ID: subID,
			NoLocal: s.NoLocal, RetainAsPublished: s.RetainAsPublished, RetainHandling: s.RetainHandling}
		if c.version != mqtt.V5 {
			sub.NoLocal, sub.RetainAsPublished, sub.RetainHandling, sub.ID = false, false, 0, 0
		}
		existed := c.st.subscribe(sub)
		if _, err := c.hub.Router().Subscribe(c.id, sub); err != nil {
			c.st.unsubscribe(sub.Filter)
			ack.ReasonCodes = append(ack.ReasonCodes, c.failCode(mqtt.TopicFilterInvalid))
			continue
		}
		ack.ReasonCodes = append(ack.ReasonCodes, mqtt.ReasonCode(s.QoS)) // granted as asked
		// [MQTT-3.3.1-9] retained messages on subscribe; Retain Handling 1
		// only for a new subscription [MQTT-3.3.1-10 (5.0)], 2 never.
		if sub.RetainHandling == 0 || (sub.RetainHandling == 1 && !existed) {
			sends = append(sends, retainedFor{sub, c.hub.Router().Retained(sub.Filter, now)})
		}
	}
	c.hub.Changed(c, c.st)
	var after []pendingMsg
	for _, r := range sends {
		var ids []uint32
		if r.sub.ID != 0 {
			ids = []uint32{r.sub.ID}
		}
		for _, m := range r.msgs {
			after = append(after, pendingMsg{m: m, qos: min(m.QoS, r.sub.QoS), retained: true, subIDs: ids})
		}
	}
	// SUBACK once the session record is durable, then the retained
	// messages, behind it.
	c.st.sendAfter(c, from, ack, after)
	return nil
}

// failCode is code for a 5.0 client and 0x80 for a 3.1.1 one.
func (c *Conn) failCode(code mqtt.ReasonCode) mqtt.ReasonCode {
	if c.version == mqtt.V5 {
		return code
	}
	return mqtt.UnspecifiedError
}
