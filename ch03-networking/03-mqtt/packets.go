package mqtt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// Will is the message a CONNECT asks the server to publish when the client
// goes away without a DISCONNECT (section 3.1.3.2).
type Will struct {
	Properties Properties // MQTT 5.0 only: the Will Properties
	Topic      string
	Payload    []byte
	QoS        QoS
	Retain     bool
}

// Connect is the first packet a client sends (section 3.1).
//
// The protocol name is always "MQTT"; Version is the protocol level. A
// client identifier may be empty (the server then assigns one, or a 3.1.1
// server rejects it unless CleanStart is set: that is the server's decision,
// not the codec's).
type Connect struct {
	// Version is the protocol level the CONNECT names. When encoding, 0
	// means the version passed to AppendTo.
	Version    Version
	CleanStart bool   // "Clean Session" in 3.1.1
	KeepAlive  uint16 // seconds; 0 turns keepalive off
	Properties Properties
	ClientID   string
	Will       *Will // nil: no will
	// HasUsername and HasPassword are the User Name and Password flags: a
	// field is sent, possibly empty, exactly when its flag is set.
	Username    string
	HasUsername bool
	Password    []byte
	HasPassword bool
}

// Type returns CONNECT.
func (*Connect) Type() PacketType { return CONNECT }

// Connect flags, byte 8 of the variable header (section 3.1.2.3).
const (
	flagReserved   = 0x01
	flagCleanStart = 0x02
	flagWill       = 0x04
	flagWillQoS    = 0x18
	flagWillRetain = 0x20
	flagPassword   = 0x40
	flagUsername   = 0x80
)

// AppendTo implements [Packet].
func (c *Connect) AppendTo(dst []byte, v Version) ([]byte, error) {
	if c.Version != 0 {
		v = c.Version
	}
	if err := checkVersion("encode CONNECT", v); err != nil {
		return dst, err
	}
	if v == V311 && c.HasPassword && !c.HasUsername {
		return dst, protocolErr("encode CONNECT", "3.1.1 forbids a password without a user name [MQTT-3.1.2-22]")
	}
	var flags byte
	if c.CleanStart {
		flags |= flagCleanStart
	}
	if w := c.Will; w != nil {
		if w.QoS > ExactlyOnce {
			return dst, malformed("encode CONNECT", "will QoS 3 [MQTT-3.1.2-12]")
		}
		flags |= flagWill | byte(w.QoS)<<3
		if w.Retain {
			flags |= flagWillRetain
		}
	}
	if c.HasUsername {
		flags |= flagUsername
	}
	if c.HasPassword {
		flags |= flagPassword
	}
	start := len(dst)
	dst = append(dst, 0, 4, 'M', 'Q', 'T', 'T', byte(v), flags)
	dst = binary.BigEndian.AppendUint16(dst, c.KeepAlive)
	var err error
	if v == V5 {
		if dst, err = c.Properties.appendTo(dst, CONNECT); err != nil {
			return dst[:start], fmt.Errorf("encode CONNECT: %w", err)
		}
	}
	if dst, err = appendString(dst, c.ClientID); err != nil {
		return dst[:start], fmt.Errorf("encode CONNECT: client identifier: %w", err)
	}
	if w := c.Will; w != nil {
		if v == V5 {
			if dst, err = w.Properties.appendTo(dst, willProps); err != nil {
				return dst[:start], fmt.Errorf("encode CONNECT: will: %w", err)
			}
		}
		if err = checkTopicName(w.Topic, v, false); err != nil {
			return dst[:start], fmt.Errorf("encode CONNECT: will topic: %w", err)
		}
		if dst, err = appendString(dst, w.Topic); err != nil {
			return dst[:start], fmt.Errorf("encode CONNECT: will topic: %w", err)
		}
		if dst, err = appendBinary(dst, w.Payload); err != nil {
			return dst[:start], fmt.Errorf("encode CONNECT: will payload: %w", err)
		}
	}
	if c.HasUsername {
		if dst, err = appendString(dst, c.Username); err != nil {
			return dst[:start], fmt.Errorf("encode CONNECT: user name: %w", err)
		}
	}
	if c.HasPassword {
		if dst, err = appendBinary(dst, c.Password); err != nil {
			return dst[:start], fmt.Errorf("encode CONNECT: password: %w", err)
		}
	}
	return finish(dst, start, CONNECT, 0)
}

// Decode implements [Packet]. The version argument is ignored: a CONNECT
// names its own.
func (c *Connect) Decode(h FixedHeader, body []byte, _ Version) error {
	if err := checkFlags(h, CONNECT); err != nil {
		return err
	}
	d := dec{b: body}
	name := d.str("protocol name")
	level := Version(d.byte1("protocol level"))
	if d.err != nil {
		return d.wrap(CONNECT)
	}
	// [MQTT-3.1.2-1] the protocol name is "MQTT"; 3.1's "MQIsdp" (level 3)
	// and any other level are refused with 0x84 [MQTT-3.1.2-2].
	if string(name) != "MQTT" {
		return fmt.Errorf("decode CONNECT: %w: protocol name %q [MQTT-3.1.2-1]", ErrUnsupportedVersion, name)
	}
	if level != V311 && level != V5 {
		return fmt.Errorf("decode CONNECT: %w: protocol level %d [MQTT-3.1.2-2]", ErrUnsupportedVersion, byte(level))
	}
	flags := d.byte1("connect flags")
	if flags&flagReserved != 0 {
		return malformed("decode CONNECT", "reserved connect flag is 1 [MQTT-3.1.2-3]")
	}
	willQoS := QoS(flags & flagWillQoS >> 3)
	if flags&flagWill == 0 {
		if willQoS != 0 {
			return malformed("decode CONNECT", "will QoS without a will [MQTT-3.1.2-11]")
		}
		if flags&flagWillRetain != 0 {
			return malformed("decode CONNECT", "will retain without a will [MQTT-3.1.2-13]")
		}
	} else if willQoS > ExactlyOnce {
		return malformed("decode CONNECT", "will QoS 3 [MQTT-3.1.2-12]")
	}
	if level == V311 && flags&flagUsername == 0 && flags&flagPassword != 0 {
		return malformed("decode CONNECT", "password flag without user name flag [MQTT-3.1.2-22] (3.1.1)")
	}
	c.Version = level
	c.CleanStart = flags&flagCleanStart != 0
	c.KeepAlive = d.uint16("keep alive")
	if level == V5 {
		d.props(&c.Properties, CONNECT)
	} else {
		c.Properties = Properties{}
	}
	// [MQTT-3.1.3-3] the Client Identifier is present and is the first
	// field of the payload; [MQTT-3.1.3-4] it is a UTF-8 Encoded String.
	setString(&c.ClientID, d.str("client identifier"))
	if flags&flagWill != 0 {
		w := c.Will
		if w == nil {
			w = new(Will)
		}
		if level == V5 {
			d.props(&w.Properties, willProps)
		} else {
			w.Properties = Properties{}
		}
		topic := d.str("will topic")
		if d.err == nil {
			if err := checkTopicName(string(topic), level, false); err != nil {
				return fmt.Errorf("decode CONNECT: will topic: %w", err)
			}
		}
		setString(&w.Topic, topic)
		w.Payload = append(w.Payload[:0], d.bin("will payload")...)
		w.QoS = willQoS
		w.Retain = flags&flagWillRetain != 0
		c.Will = w
	} else {
		c.Will = nil
	}
	c.HasUsername = flags&flagUsername != 0
	c.Username = ""
	if c.HasUsername {
		// [MQTT-3.1.2-17] the flag says the field is present.
		setString(&c.Username, d.str("user name"))
	}
	c.HasPassword = flags&flagPassword != 0
	c.Password = c.Password[:0]
	if c.HasPassword {
		// [MQTT-3.1.2-19]
		c.Password = append(c.Password, d.bin("password")...)
	}
	d.end()
	return d.wrap(CONNECT)
}

// Connack is the server's answer to a CONNECT (section 3.2). ReasonCode is
// always an MQTT 5.0 code; for a 3.1.1 connection it is written as the
// return code ReturnCodeV311 gives, and decoded back the same way.
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Properties     Properties
}

// Type returns CONNACK.
func (*Connack) Type() PacketType { return CONNACK }

// AppendTo implements [Packet].
func (c *Connack) AppendTo(dst []byte, v Version) ([]byte, error) {
	if err := checkVersion("encode CONNACK", v); err != nil {
		return dst, err
	}
	if c.SessionPresent && c.ReasonCode != Success {
		return dst, protocolErr("encode CONNACK", "session present with a failure code [MQTT-3.2.2-6]")
	}
	start := len(dst)
	var ack byte
	if c.SessionPresent {
		ack = 1
	}
	if v == V311 {
		dst = append(dst, ack, ReturnCodeV311(c.ReasonCode))
		return finish(dst, start, CONNACK, 0)
	}
	if !validReason(CONNACK, c.ReasonCode) {
		return dst, protocolErr("encode CONNACK", c.ReasonCode.String()+" is not a CONNACK reason code")
	}
	dst = append(dst, ack, byte(c.ReasonCode))
	var err error
	if dst, err = c.Properties.appendTo(dst, CONNACK); err != nil {
		return dst[:start], fmt.Errorf("encode CONNACK: %w", err)
	}
	return finish(dst, start, CONNACK, 0)
}

// Decode implements [Packet].
func (c *Connack) Decode(h FixedHeader, body []byte, v Version) error {
	if err := checkFlags(h, CONNACK); err != nil {
		return err
	}
	if err := checkVersion("decode CONNACK", v); err != nil {
		return err
	}
	d := dec{b: body}
	ack := d.byte1("acknowledge flags")
	code := d.byte1("reason code")
	if d.err != nil {
		return d.wrap(CONNACK)
	}
	if ack&0xFE != 0 {
		// 3.2.2.1: bits 7-1 of the Connect Acknowledge Flags are reserved and set to 0.
		return malformed("decode CONNACK", "reserved acknowledge flags are not 0")
	}
	c.SessionPresent = ack == 1
	if v == V311 {
		rc, ok := reasonFromV311(code)
		if !ok {
			return protocolErr("decode CONNACK", "return code "+itoa(int(code))+" is reserved (3.1.1)")
		}
		c.ReasonCode = rc
		c.Properties = Properties{}
	} else {
		c.ReasonCode = ReasonCode(code)
		if !validReason(CONNACK, c.ReasonCode) {
			return protocolErr("decode CONNACK", c.ReasonCode.String()+" is not a CONNACK reason code")
		}
		d.props(&c.Properties, CONNACK)
	}
	if c.SessionPresent && c.ReasonCode != Success {
		// v5 [MQTT-3.2.2-6], 3.1.1 [MQTT-3.2.2-4]
		return protocolErr("decode CONNACK", "session present with a failure code [MQTT-3.2.2-6]")
	}
	d.end()
	return d.wrap(CONNACK)
}

// Publish carries an application message (section 3.3). Topic and Payload
// are byte slices so that decoding into a reused Publish copies into their
// existing capacity and allocates nothing; Topic is empty in an MQTT 5.0
// PUBLISH that names its topic only by Topic Alias.
type Publish struct {
	Dup        bool
	QoS        QoS
	Retain     bool
	Topic      []byte
	PacketID   uint16 // present only when QoS > 0
	Properties Properties
	Payload    []byte
}

// Type returns PUBLISH.
func (*Publish) Type() PacketType { return PUBLISH }

// Flags returns the fixed-header flags of p: DUP, QoS and RETAIN.
func (p *Publish) Flags() byte {
	f := byte(p.QoS) << 1
	if p.Dup {
		f |= 0x08
	}
	if p.Retain {
		f |= 0x01
	}
	return f
}

// AppendTo implements [Packet].
func (p *Publish) AppendTo(dst []byte, v Version) ([]byte, error) {
	const op = "encode PUBLISH"
	if err := checkVersion(op, v); err != nil {
		return dst, err
	}
	if p.QoS > ExactlyOnce {
		return dst, malformed(op, "QoS 3 [MQTT-3.3.1-4]")
	}
	if p.QoS == AtMostOnce && p.Dup {
		return dst, malformed(op, "DUP set on a QoS 0 message [MQTT-3.3.1-2]")
	}
	if p.QoS > AtMostOnce && p.PacketID == 0 {
		return dst, protocolErr(op, "packet identifier 0 [MQTT-2.2.1-3]")
	}
	if len(p.Topic) > MaxStringLen {
		return dst, fmt.Errorf("%s: topic of %d bytes: %w", op, len(p.Topic), ErrPacketTooLarge)
	}
	if err := checkTopicBytes(p.Topic, v, p.Properties.TopicAlias != 0); err != nil {
		return dst, fmt.Errorf("%s: %w", op, err)
	}
	start := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(p.Topic)))
	dst = append(dst, p.Topic...)
	if _, _, err := DecodeString(dst[start:]); err != nil {
		return dst[:start], fmt.Errorf("%s: topic: %w", op, err)
	}
	if p.QoS > AtMostOnce {
		dst = binary.BigEndian.AppendUint16(dst, p.PacketID)
	}
	var err error
	if v == V5 {
		if dst, err = p.Properties.appendTo(dst, PUBLISH); err != nil {
			return dst[:start], fmt.Errorf("%s: %w", op, err)
		}
	}
	dst = append(dst, p.Payload...)
	return finish(dst, start, PUBLISH, p.Flags())
}

// checkTopicName applies the rules every Topic Name follows: no wildcards
// [MQTT-3.3.2-2], and at least one character [MQTT-4.7.3-1] unless an MQTT
// 5.0 Topic Alias stands in for it (3.3.2.1).
func checkTopicName(topic string, v Version, alias bool) error {
	if topic == "" && !(v == V5 && alias) {
		return protocolErr("topic name", "empty topic name [MQTT-4.7.3-1]")
	}
	if strings.ContainsAny(topic, "+#") {
		return fmt.Errorf("%w: %q holds a wildcard [MQTT-3.3.2-2]", ErrTopicNameInvalid, topic)
	}
	return nil
}

// encodeOps holds "encode TYPE" for each packet type, so that the encoders
// that share code name their operation without building a string per call:
// an acknowledgement is encoded once per message, and errors are rare.
var encodeOps = func() (ops [len(typeNames)]string) {
	for t := range ops {
		ops[t] = "encode " + PacketType(t).String()
	}
	return ops
}()

// encodeOp is "encode " + t.String(), without an allocation for valid types.
func encodeOp(t PacketType) string {
	if int(t) < len(encodeOps) {
		return encodeOps[t]
	}
	return "encode " + t.String()
}

// ack is the shape PUBACK, PUBREC, PUBREL and PUBCOMP share (sections 3.4-3.7).
func appendAck(dst []byte, v Version, t PacketType, id uint16, rc ReasonCode, props *Properties) ([]byte, error) {
	op := encodeOp(t)
	if err := checkVersion(op, v); err != nil {
		return dst, err
	}
	if id == 0 {
		return dst, protocolErr(op, "packet identifier 0 [MQTT-2.2.1-3]")
	}
	start := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, id)
	if v == V5 {
		if !validReason(t, rc) {
			return dst[:start], protocolErr(op, rc.String()+" is not a "+t.String()+" reason code")
		}
		// 3.4.2.1: the Reason Code and Property Length can be left out
		// when the code is Success and there are no properties.
		mark := len(dst)
		dst = append(dst, byte(rc))
		var err error
		if dst, err = props.appendTo(dst, t); err != nil {
			return dst[:start], fmt.Errorf("%s: %w", op, err)
		}
		if dst[len(dst)-1] == 0 && len(dst) == mark+2 { // property length 0
			dst = dst[:mark+1]
			if rc == Success {
				dst = dst[:mark]
			}
		}
	}
	flags := byte(0)
	if t == PUBREL {
		flags = 2
	}
	return finish(dst, start, t, flags)
}

func decodeAck(h FixedHeader, body []byte, v Version, t PacketType, id *uint16, rc *ReasonCode, props *Properties) error {
	if err := checkFlags(h, t); err != nil {
		return err
	}
	if err := checkVersion("decode "+t.String(), v); err != nil {
		return err
	}
	d := dec{b: body}
	*id = d.uint16("packet identifier")
	if d.err == nil && *id == 0 {
		d.fail(fmt.Errorf("%w: packet identifier 0 [MQTT-2.2.1-3]", ErrProtocol))
	}
	*rc = Success
	if v == V5 && d.err == nil {
		if len(d.b) > 0 {
			*rc = ReasonCode(d.byte1("reason code"))
			if !validReason(t, *rc) {
				d.fail(fmt.Errorf("%w: %s is not a %s reason code", ErrProtocol, *rc, t))
			}
		}
		if len(d.b) > 0 {
			d.props(props, t)
		} else {
			props.reset()
			props.clearAbsentStrings()
		}
	} else if v == V311 {
		*props = Properties{}
	}
	d.end()
	return d.wrap(t)
}

// PubAck answers a QoS 1 PUBLISH (section 3.4).
type PubAck struct {
	PacketID   uint16
	ReasonCode ReasonCode // MQTT 5.0 only
	Properties Properties // MQTT 5.0 only
}

// PubRec is the first answer to a QoS 2 PUBLISH (section 3.5).
type PubRec PubAck

// PubRel answers a PUBREC (section 3.6).
type PubRel PubAck

// PubComp answers a PUBREL, ending a QoS 2 exchange (section 3.7).
type PubComp PubAck

// Type returns PUBACK.
func (*PubAck) Type() PacketType { return PUBACK }

// Type returns PUBREC.
func (*PubRec) Type() PacketType { return PUBREC }

// Type returns PUBREL.
func (*PubRel) Type() PacketType { return PUBREL }

// Type returns PUBCOMP.
func (*PubComp) Type() PacketType { return PUBCOMP }

// AppendTo implements [Packet].
func (p *PubAck) AppendTo(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, v, PUBACK, p.PacketID, p.ReasonCode, &p.Properties)
}

// AppendTo implements [Packet].
func (p *PubRec) AppendTo(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, v, PUBREC, p.PacketID, p.ReasonCode, &p.Properties)
}

// AppendTo implements [Packet].
func (p *PubRel) AppendTo(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, v, PUBREL, p.PacketID, p.ReasonCode, &p.Properties)
}

// AppendTo implements [Packet].
func (p *PubComp) AppendTo(dst []byte, v Version) ([]byte, error) {
	return appendAck(dst, v, PUBCOMP, p.PacketID, p.ReasonCode, &p.Properties)
}

// Decode implements [Packet].
func (p *PubAck) Decode(h FixedHeader, body []byte, v Version) error {
	return decodeAck(h, body, v, PUBACK, &p.PacketID, &p.ReasonCode, &p.Properties)
}

// Decode implements [Packet]. [MQTT-3.5.1] has no flags.
func (p *PubRec) Decode(h FixedHeader, body []byte, v Version) error {
	return decodeAck(h, body, v, PUBREC, &p.PacketID, &p.ReasonCode, &p.Properties)
}

// Decode implements [Packet]. The flags are 0010 [MQTT-3.6.1-1].
func (p *PubRel) Decode(h FixedHeader, body []byte, v Version) error {
	return decodeAck(h, body, v, PUBREL, &p.PacketID, &p.ReasonCode, &p.Properties)
}

// Decode implements [Packet].
func (p *PubComp) Decode(h FixedHeader, body []byte, v Version) error {
	return decodeAck(h, body, v, PUBCOMP, &p.PacketID, &p.ReasonCode, &p.Properties)
}

// Subscription is one Topic Filter of a SUBSCRIBE and its options (section
// 3.8.3.1). NoLocal, RetainAsPublished and RetainHandling are MQTT 5.0 only.
type Subscription struct {
	Filter            string
	QoS               QoS // the maximum QoS the client accepts
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte // 0 send retained, 1 only for a new subscription, 2 never
}

// Subscribe asks for subscriptions (section 3.8).
type Subscribe struct {
	PacketID      uint16
	Properties    Properties // Subscription Identifier, User Property
	Subscriptions []Subscription
}

// Type returns SUBSCRIBE.
func (*Subscribe) Type() PacketType { return SUBSCRIBE }

// AppendTo implements [Packet].
func (s *Subscribe) AppendTo(dst []byte, v Version) ([]byte, error) {
	const op = "encode SUBSCRIBE"
	if err := checkVersion(op, v); err != nil {
		return dst, err
	}
	if s.PacketID == 0 {
		return dst, protocolErr(op, "packet identifier 0 [MQTT-2.2.1-3]")
	}
	if len(s.Subscriptions) == 0 {
		return dst, protocolErr(op, "no topic filter [MQTT-3.8.3-2]")
	}
	if len(s.Properties.SubscriptionIDs) > 1 {
		return dst, protocolErr(op, "more than one Subscription Identifier")
	}
	start := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, s.PacketID)
	var err error
	if v == V5 {
		if dst, err = s.Properties.appendTo(dst, SUBSCRIBE); err != nil {
			return dst[:start], fmt.Errorf("%s: %w", op, err)
		}
	}
	for _, sub := range s.Subscriptions {
		if err := checkSubscription(sub, v); err != nil {
			return dst[:start], fmt.Errorf("%s: %w", op, err)
		}
		if dst, err = appendString(dst, sub.Filter); err != nil {
			return dst[:start], fmt.Errorf("%s: topic filter: %w", op, err)
		}
		opts := byte(sub.QoS)
		if v == V5 {
			if sub.NoLocal {
				opts |= 0x04
			}
			if sub.RetainAsPublished {
				opts |= 0x08
			}
			opts |= sub.RetainHandling << 4
		}
		dst = append(dst, opts)
	}
	return finish(dst, start, SUBSCRIBE, 2)
}

func checkSubscription(sub Subscription, v Version) error {
	if sub.Filter == "" {
		return protocolErr("topic filter", "empty topic filter [MQTT-4.7.3-1]")
	}
	if sub.QoS > ExactlyOnce {
		if v == V311 {
			return malformed("subscription options", "QoS 3 [MQTT-3-8.3-4]")
		}
		// 3.8.3.1: "It is a Protocol Error if the Maximum QoS field has
		// the value 3."
		return protocolErr("subscription options", "Maximum QoS 3 (3.8.3.1)")
	}
	if v == V5 {
		if sub.RetainHandling > 2 {
			return protocolErr("subscription options", "Retain Handling 3 (3.8.3.1)")
		}
		if sub.NoLocal && strings.HasPrefix(sub.Filter, "$share/") {
			return protocolErr("subscription options", "No Local on a shared subscription [MQTT-3.8.3-4]")
		}
	}
	return nil
}

// Decode implements [Packet].
func (s *Subscribe) Decode(h FixedHeader, body []byte, v Version) error {
	if err := checkFlags(h, SUBSCRIBE); err != nil { // [MQTT-3.8.1-1]
		return err
	}
	if err := checkVersion("decode SUBSCRIBE", v); err != nil {
		return err
	}
	d := dec{b: body}
	s.PacketID = d.uint16("packet identifier")
	if d.err == nil && s.PacketID == 0 {
		d.fail(fmt.Errorf("%w: packet identifier 0 [MQTT-2.2.1-3]", ErrProtocol))
	}
	if v == V5 {
		d.props(&s.Properties, SUBSCRIBE)
	} else {
		s.Properties = Properties{}
	}
	s.Subscriptions = s.Subscriptions[:0]
	for d.err == nil && len(d.b) > 0 {
		filter := d.str("topic filter")
		opts := d.byte1("subscription options")
		if d.err != nil {
			break
		}
		reserved := byte(0xFC) // 3.1.1: bits 7-2 [MQTT-3-8.3-4]
		if v == V5 {
			reserved = 0xC0 // 5.0: bits 7-6 [MQTT-3.8.3-5]
		}
		if opts&reserved != 0 {
			d.fail(fmt.Errorf("%w: reserved subscription option bits %08b", ErrMalformed, opts))
			break
		}
		sub := Subscription{
			Filter:            string(filter),
			QoS:               QoS(opts & 0x03),
			NoLocal:           opts&0x04 != 0,
			RetainAsPublished: opts&0x08 != 0,
			RetainHandling:    opts >> 4 & 0x03,
		}
		if err := checkSubscription(sub, v); err != nil {
			d.fail(err)
			break
		}
		s.Subscriptions = append(s.Subscriptions, sub)
	}
	if d.err == nil && len(s.Subscriptions) == 0 {
		// v5 [MQTT-3.8.3-2], 3.1.1 [MQTT-3.8.3-3]
		d.fail(fmt.Errorf("%w: no topic filter [MQTT-3.8.3-2]", ErrProtocol))
	}
	return d.wrap(SUBSCRIBE)
}

// SubAck answers a SUBSCRIBE with one reason code per filter, in order
// (section 3.9): GrantedQoS0-2, or a failure code (3.1.1 knows only 0x80).
type SubAck struct {
	PacketID    uint16
	Properties  Properties // MQTT 5.0 only
	ReasonCodes []ReasonCode
}

// Type returns SUBACK.
func (*SubAck) Type() PacketType { return SUBACK }

// AppendTo implements [Packet].
func (s *SubAck) AppendTo(dst []byte, v Version) ([]byte, error) {
	return appendCodes(dst, v, SUBACK, s.PacketID, &s.Properties, s.ReasonCodes)
}

// Decode implements [Packet].
func (s *SubAck) Decode(h FixedHeader, body []byte, v Version) error {
	return decodeCodes(h, body, v, SUBACK, &s.PacketID, &s.Properties, &s.ReasonCodes)
}

// Unsubscribe removes subscriptions (section 3.10).
type Unsubscribe struct {
	PacketID   uint16
	Properties Properties // MQTT 5.0 only: User Property
	Filters    []string
}

// Type returns UNSUBSCRIBE.
func (*Unsubscribe) Type() PacketType { return UNSUBSCRIBE }

// AppendTo implements [Packet].
func (u *Unsubscribe) AppendTo(dst []byte, v Version) ([]byte, error) {
	const op = "encode UNSUBSCRIBE"
	if err := checkVersion(op, v); err != nil {
		return dst, err
	}
	if u.PacketID == 0 {
		return dst, protocolErr(op, "packet identifier 0 [MQTT-2.2.1-3]")
	}
	if len(u.Filters) == 0 {
		return dst, protocolErr(op, "no topic filter [MQTT-3.10.3-2]")
	}
	start := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, u.PacketID)
	var err error
	if v == V5 {
		if dst, err = u.Properties.appendTo(dst, UNSUBSCRIBE); err != nil {
			return dst[:start], fmt.Errorf("%s: %w", op, err)
		}
	}
	for _, f := range u.Filters {
		if f == "" {
			return dst[:start], protocolErr(op, "empty topic filter [MQTT-4.7.3-1]")
		}
		if dst, err = appendString(dst, f); err != nil {
			return dst[:start], fmt.Errorf("%s: topic filter: %w", op, err)
		}
	}
	return finish(dst, start, UNSUBSCRIBE, 2)
}

// Decode implements [Packet].
func (u *Unsubscribe) Decode(h FixedHeader, body []byte, v Version) error {
	if err := checkFlags(h, UNSUBSCRIBE); err != nil { // [MQTT-3.10.1-1]
		return err
	}
	if err := checkVersion("decode UNSUBSCRIBE", v); err != nil {
		return err
	}
	d := dec{b: body}
	u.PacketID = d.uint16("packet identifier")
	if d.err == nil && u.PacketID == 0 {
		d.fail(fmt.Errorf("%w: packet identifier 0 [MQTT-2.2.1-3]", ErrProtocol))
	}
	if v == V5 {
		d.props(&u.Properties, UNSUBSCRIBE)
	} else {
		u.Properties = Properties{}
	}
	u.Filters = u.Filters[:0]
	for d.err == nil && len(d.b) > 0 {
		f := d.str("topic filter")
		if d.err == nil && len(f) == 0 {
			d.fail(fmt.Errorf("%w: empty topic filter [MQTT-4.7.3-1]", ErrProtocol))
		}
		if d.err == nil {
			u.Filters = append(u.Filters, string(f))
		}
	}
	if d.err == nil && len(u.Filters) == 0 {
		// v5 [MQTT-3.10.3-2], 3.1.1 [MQTT-3.10.3-2]
		d.fail(fmt.Errorf("%w: no topic filter [MQTT-3.10.3-2]", ErrProtocol))
	}
	return d.wrap(UNSUBSCRIBE)
}

// UnsubAck answers an UNSUBSCRIBE (section 3.11). In MQTT 5.0 it carries one
// reason code per filter; in 3.1.1 it carries none and ReasonCodes is
// ignored.
type UnsubAck struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode
}

// Type returns UNSUBACK.
func (*UnsubAck) Type() PacketType { return UNSUBACK }

// AppendTo implements [Packet].
func (u *UnsubAck) AppendTo(dst []byte, v Version) ([]byte, error) {
	return appendCodes(dst, v, UNSUBACK, u.PacketID, &u.Properties, u.ReasonCodes)
}

// Decode implements [Packet].
func (u *UnsubAck) Decode(h FixedHeader, body []byte, v Version) error {
	return decodeCodes(h, body, v, UNSUBACK, &u.PacketID, &u.Properties, &u.ReasonCodes)
}

// appendCodes encodes SUBACK and UNSUBACK.
func appendCodes(dst []byte, v Version, t PacketType, id uint16, props *Properties, codes []ReasonCode) ([]byte, error) {
	op := encodeOp(t)
	if err := checkVersion(op, v); err != nil {
		return dst, err
	}
	if id == 0 {
		return dst, protocolErr(op, "packet identifier 0 [MQTT-2.2.1-3]")
	}
	start := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, id)
	if v == V311 && t == UNSUBACK {
		return finish(dst, start, t, 0)
	}
	if len(codes) == 0 {
		return dst[:start], protocolErr(op, "no reason codes")
	}
	var err error
	if v == V5 {
		if dst, err = props.appendTo(dst, t); err != nil {
			return dst[:start], fmt.Errorf("%s: %w", op, err)
		}
	}
	for _, c := range codes {
		if !validCode(v, t, c) {
			return dst[:start], protocolErr(op, c.String()+" is not a "+t.String()+" reason code")
		}
		dst = append(dst, byte(c))
	}
	return finish(dst, start, t, 0)
}

func decodeCodes(h FixedHeader, body []byte, v Version, t PacketType, id *uint16, props *Properties, codes *[]ReasonCode) error {
	if err := checkFlags(h, t); err != nil {
		return err
	}
	if err := checkVersion("decode "+t.String(), v); err != nil {
		return err
	}
	d := dec{b: body}
	*id = d.uint16("packet identifier")
	if d.err == nil && *id == 0 {
		d.fail(fmt.Errorf("%w: packet identifier 0 [MQTT-2.2.1-3]", ErrProtocol))
	}
	*codes = (*codes)[:0]
	if v == V311 {
		*props = Properties{}
		if t == UNSUBACK {
			d.end()
			return d.wrap(t)
		}
	} else {
		d.props(props, t)
	}
	for d.err == nil && len(d.b) > 0 {
		c := ReasonCode(d.byte1("reason code"))
		if !validCode(v, t, c) {
			d.fail(fmt.Errorf("%w: %s is not a %s reason code", ErrProtocol, c, t))
			break
		}
		*codes = append(*codes, c)
	}
	if d.err == nil && len(*codes) == 0 {
		d.fail(fmt.Errorf("%w: no reason codes", ErrProtocol))
	}
	return d.wrap(t)
}

func validCode(v Version, t PacketType, c ReasonCode) bool {
	if v == V311 { // 3.9.3: 0x00, 0x01, 0x02, 0x80
		return t == SUBACK && (c <= GrantedQoS2 || c == UnspecifiedError)
	}
	return validReason(t, c)
}

// PingReq is a client's keepalive probe (section 3.12). It has no body.
type PingReq struct{}

// PingResp answers a PINGREQ (section 3.13). It has no body.
type PingResp struct{}

// Type returns PINGREQ.
func (*PingReq) Type() PacketType { return PINGREQ }

// Type returns PINGRESP.
func (*PingResp) Type() PacketType { return PINGRESP }

// AppendTo implements [Packet].
func (*PingReq) AppendTo(dst []byte, v Version) ([]byte, error) {
	if err := checkVersion("encode PINGREQ", v); err != nil {
		return dst, err
	}
	return append(dst, byte(PINGREQ)<<4, 0), nil
}

// AppendTo implements [Packet].
func (*PingResp) AppendTo(dst []byte, v Version) ([]byte, error) {
	if err := checkVersion("encode PINGRESP", v); err != nil {
		return dst, err
	}
	return append(dst, byte(PINGRESP)<<4, 0), nil
}

// Decode implements [Packet].
func (*PingReq) Decode(h FixedHeader, body []byte, v Version) error {
	return decodeEmpty(h, body, v, PINGREQ)
}

// Decode implements [Packet].
func (*PingResp) Decode(h FixedHeader, body []byte, v Version) error {
	return decodeEmpty(h, body, v, PINGRESP)
}

func decodeEmpty(h FixedHeader, body []byte, v Version, t PacketType) error {
	if err := checkFlags(h, t); err != nil {
		return err
	}
	if err := checkVersion("decode "+t.String(), v); err != nil {
		return err
	}
	if len(body) != 0 {
		return malformed("decode "+t.String(), "the packet has no body, but "+itoa(len(body))+" bytes follow")
	}
	return nil
}

// Disconnect ends a connection cleanly (section 3.14). In MQTT 5.0 either
// side may send it, with a reason; in 3.1.1 only the client sends it and it
// has no body.
type Disconnect struct {
	ReasonCode ReasonCode
	Properties Properties
}

// Type returns DISCONNECT.
func (*Disconnect) Type() PacketType { return DISCONNECT }

// AppendTo implements [Packet].
func (p *Disconnect) AppendTo(dst []byte, v Version) ([]byte, error) {
	return appendReasonOnly(dst, v, DISCONNECT, p.ReasonCode, &p.Properties)
}

// Decode implements [Packet].
func (p *Disconnect) Decode(h FixedHeader, body []byte, v Version) error {
	return decodeReasonOnly(h, body, v, DISCONNECT, &p.ReasonCode, &p.Properties)
}

// Auth carries a step of extended authentication (section 3.15, MQTT 5.0
// only).
type Auth struct {
	ReasonCode ReasonCode // Success, ContinueAuthentication or ReAuthenticate
	Properties Properties
}

// Type returns AUTH.
func (*Auth) Type() PacketType { return AUTH }

// AppendTo implements [Packet].
func (p *Auth) AppendTo(dst []byte, v Version) ([]byte, error) {
	if v == V311 {
		return dst, malformed("encode AUTH", "AUTH does not exist in 3.1.1 (type 15 is reserved)")
	}
	return appendReasonOnly(dst, v, AUTH, p.ReasonCode, &p.Properties)
}

// Decode implements [Packet].
func (p *Auth) Decode(h FixedHeader, body []byte, v Version) error {
	if v == V311 {
		return malformed("decode AUTH", "AUTH does not exist in 3.1.1 (type 15 is reserved)")
	}
	return decodeReasonOnly(h, body, v, AUTH, &p.ReasonCode, &p.Properties)
}

// appendReasonOnly encodes DISCONNECT and AUTH: an optional reason code and
// optional properties.
func appendReasonOnly(dst []byte, v Version, t PacketType, rc ReasonCode, props *Properties) ([]byte, error) {
	op := encodeOp(t)
	if err := checkVersion(op, v); err != nil {
		return dst, err
	}
	start := len(dst)
	if v == V5 {
		if !validReason(t, rc) {
			return dst, protocolErr(op, rc.String()+" is not a "+t.String()+" reason code")
		}
		dst = append(dst, byte(rc))
		var err error
		if dst, err = props.appendTo(dst, t); err != nil {
			return dst[:start], fmt.Errorf("%s: %w", op, err)
		}
		// 3.14.2.1 and 3.15.2.1: with Success and no properties the
		// body may be empty.
		if len(dst) == start+2 && dst[start+1] == 0 {
			dst = dst[:start+1]
			if rc == Success {
				dst = dst[:start]
			}
		}
	}
	return finish(dst, start, t, 0)
}

func decodeReasonOnly(h FixedHeader, body []byte, v Version, t PacketType, rc *ReasonCode, props *Properties) error {
	if err := checkFlags(h, t); err != nil { // [MQTT-3.14.1-1], [MQTT-3.15.1-1]
		return err
	}
	if err := checkVersion("decode "+t.String(), v); err != nil {
		return err
	}
	d := dec{b: body}
	*rc = Success
	if v == V311 {
		*props = Properties{}
		d.end()
		return d.wrap(t)
	}
	if len(d.b) > 0 {
		*rc = ReasonCode(d.byte1("reason code"))
		if !validReason(t, *rc) {
			d.fail(fmt.Errorf("%w: %s is not a %s reason code", ErrProtocol, *rc, t))
		}
	}
	if len(d.b) > 0 {
		d.props(props, t)
	} else {
		props.reset()
		props.clearAbsentStrings()
	}
	d.end()
	return d.wrap(t)
}

// reasonSets lists the reason codes each packet type may carry (the tables
// in sections 3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3,
// 3.14.2.1 and 3.15.2.1).
var reasonSets = map[PacketType]string{
	CONNACK:    "\x00\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8A\x8C\x90\x95\x97\x99\x9A\x9B\x9C\x9D\x9F",
	PUBACK:     "\x00\x10\x80\x83\x87\x90\x91\x97\x99",
	PUBREC:     "\x00\x10\x80\x83\x87\x90\x91\x97\x99",
	PUBREL:     "\x00\x92",
	PUBCOMP:    "\x00\x92",
	SUBACK:     "\x00\x01\x02\x80\x83\x87\x8F\x91\x97\x9E\xA1\xA2",
	UNSUBACK:   "\x00\x11\x80\x83\x87\x8F\x91",
	DISCONNECT: "\x00\x04\x80\x81\x82\x83\x87\x89\x8B\x8D\x8E\x8F\x90\x93\x94\x95\x96\x97\x98\x99\x9A\x9B\x9C\x9D\x9E\x9F\xA0\xA1\xA2",
	AUTH:       "\x00\x18\x19",
}

// validReason reports whether c is a reason code packet type t may carry.
func validReason(t PacketType, c ReasonCode) bool {
	return strings.IndexByte(reasonSets[t], byte(c)) >= 0
}

// checkTopicBytes is checkTopicName for a topic still in the packet's bytes;
// it does not allocate.
func checkTopicBytes(topic []byte, v Version, alias bool) error {
	if len(topic) == 0 && !(v == V5 && alias) {
		return protocolErr("topic name", "empty topic name [MQTT-4.7.3-1]")
	}
	for _, c := range topic {
		if c == '+' || c == '#' {
			return fmt.Errorf("%w: topic name holds a wildcard [MQTT-3.3.2-2]", ErrTopicNameInvalid)
		}
	}
	return nil
}

// Clone returns a deep copy of p that shares no memory with it: keep a
// clone, not p, when p is a value the caller decodes into again (a retained
// message, a message queued for a slow subscriber).
func (p *Publish) Clone() *Publish {
	c := *p
	c.Topic = bytes.Clone(p.Topic)
	c.Payload = bytes.Clone(p.Payload)
	c.Properties = p.Properties.Clone()
	return &c
}

// Clone returns a deep copy of p that shares no memory with it.
func (p *Properties) Clone() Properties {
	c := *p
	c.CorrelationData = bytes.Clone(p.CorrelationData)
	c.AuthData = bytes.Clone(p.AuthData)
	c.SubscriptionIDs = slices.Clone(p.SubscriptionIDs)
	c.User = slices.Clone(p.User)
	return c
}
