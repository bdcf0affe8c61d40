package mqtt

import (
	"encoding/binary"
	"fmt"
)

// PropID identifies an MQTT 5.0 property (section 2.2.2.2, Table 2-4).
type PropID byte

// The MQTT 5.0 property identifiers.
const (
	PropPayloadFormat        PropID     = 0x01
	PropMessageExpiry        PropID     = 0x02
	PropContentType          PropID     = 0x03
	PropResponseTopic        PropID     = 0x08
	PropCorrelationData      PropID     = 0x09
	PropSubscriptionID       PropID     = 0x0B
	PropSessionExpiry        PropID     = 0x11
	PropAssignedClientID     PropID     = 0x12
	PropServerKeepAlive      PropID     = 0x13
	PropAuthMethod           PropID     = 0x15
	PropAuthData             PropID     = 0x16
	PropRequestProblemInfo   PropID     = 0x17
	PropWillDelay            PropID     = 0x18
	PropRequestResponseInfo  PropID     = 0x19
	PropResponseInfo         PropID     = 0x1A
	PropServerReference      PropID     = 0x1C
	PropReasonString         PropID     = 0x1F
	PropReceiveMaximum       PropID     = 0x21
	PropTopicAliasMaximum    PropID     = 0x22
	PropTopicAlias           PropID     = 0x23
	PropMaximumQoS           PropID     = 0x24
	PropRetainAvailable      PropID     = 0x25
	PropUser                 PropID     = 0x26
	PropMaximumPacketSize    PropID     = 0x27
	PropWildcardSubAvailable PropID     = 0x28
	PropSubIDAvailable       PropID     = 0x29
	PropSharedSubAvailable   PropID     = 0x2A
	propMax                  PropID     = 0x2A
	willProps                PacketType = 0 // the Will Properties of a CONNECT use the reserved type 0 as their context
)

// UserProperty is one User Property: a name and value pair, in order. The
// same name may appear more than once.
type UserProperty struct {
	Key, Value string
}

// Properties holds the MQTT 5.0 properties of a packet (or of a CONNECT's
// will). A 3.1.1 packet has none: encoding ignores them and decoding leaves
// them empty.
//
// Presence. Absent properties have defaults that are not always zero (an
// absent Maximum QoS means 2, an absent Server Keep Alive means "use the
// client's"), so Properties records which ones a decoded packet carried:
// [Properties.Has]. When encoding, a property is written if it was marked
// with [Properties.Mark] or if its field is non-zero (non-empty), so setting
// a field is enough except to send an explicit zero, for example Maximum QoS
// 0: set nothing and call Mark(PropMaximumQoS).
//
// Reuse. Decoding into a used Properties keeps the capacity of its slices
// and keeps a string field's old value when the new bytes are equal to it,
// so a stream of packets with the same properties decodes without
// allocating.
type Properties struct {
	PayloadFormat        byte   // 0x01 PUBLISH, will: 0 bytes, 1 UTF-8
	MessageExpiry        uint32 // 0x02 PUBLISH, will: seconds
	ContentType          string // 0x03 PUBLISH, will
	ResponseTopic        string // 0x08 PUBLISH, will
	CorrelationData      []byte // 0x09 PUBLISH, will
	SubscriptionIDs      []uint32
	SessionExpiry        uint32         // 0x11 CONNECT, CONNACK, DISCONNECT: seconds
	AssignedClientID     string         // 0x12 CONNACK
	ServerKeepAlive      uint16         // 0x13 CONNACK: seconds
	AuthMethod           string         // 0x15 CONNECT, CONNACK, AUTH
	AuthData             []byte         // 0x16 CONNECT, CONNACK, AUTH
	RequestProblemInfo   byte           // 0x17 CONNECT: 0 or 1 (absent means 1)
	WillDelay            uint32         // 0x18 will: seconds
	RequestResponseInfo  byte           // 0x19 CONNECT: 0 or 1
	ResponseInfo         string         // 0x1A CONNACK
	ServerReference      string         // 0x1C CONNACK, DISCONNECT
	ReasonString         string         // 0x1F acks, CONNACK, DISCONNECT, AUTH
	ReceiveMaximum       uint16         // 0x21 CONNECT, CONNACK: not 0 (absent means 65,535)
	TopicAliasMaximum    uint16         // 0x22 CONNECT, CONNACK
	TopicAlias           uint16         // 0x23 PUBLISH: not 0
	MaximumQoS           byte           // 0x24 CONNACK: 0 or 1 (absent means 2)
	RetainAvailable      byte           // 0x25 CONNACK: 0 or 1 (absent means 1)
	User                 []UserProperty // 0x26 every packet with properties
	MaximumPacketSize    uint32         // 0x27 CONNECT, CONNACK: not 0 (absent means no limit)
	WildcardSubAvailable byte           // 0x28 CONNACK: 0 or 1 (absent means 1)
	SubIDAvailable       byte           // 0x29 CONNACK: 0 or 1 (absent means 1)
	SharedSubAvailable   byte           // 0x2A CONNACK: 0 or 1 (absent means 1)

	present uint64 // bit id set: the property was decoded or marked
}

// Has reports whether the property was present in the decoded packet, or was
// marked with Mark.
func (p *Properties) Has(id PropID) bool { return id <= propMax && p.present&(1<<id) != 0 }

// Mark makes the encoder write the property even when its field is zero.
func (p *Properties) Mark(id PropID) {
	if id <= propMax {
		p.present |= 1 << id
	}
}

// propKind is a property's data type (section 1.5).
type propKind byte

const (
	kByte propKind = iota + 1
	kUint16
	kUint32
	kVarInt
	kString
	kBinary
	kPair
)

type propInfo struct {
	kind    propKind
	allowed uint32 // bit t: allowed in packet type t; bit 0: will properties
	name    string
}

func in(ts ...PacketType) uint32 {
	var m uint32
	for _, t := range ts {
		m |= 1 << t
	}
	return m
}

var propTable = [propMax + 1]propInfo{
	PropPayloadFormat:        {kByte, in(PUBLISH, willProps), "Payload Format Indicator"},
	PropMessageExpiry:        {kUint32, in(PUBLISH, willProps), "Message Expiry Interval"},
	PropContentType:          {kString, in(PUBLISH, willProps), "Content Type"},
	PropResponseTopic:        {kString, in(PUBLISH, willProps), "Response Topic"},
	PropCorrelationData:      {kBinary, in(PUBLISH, willProps), "Correlation Data"},
	PropSubscriptionID:       {kVarInt, in(PUBLISH, SUBSCRIBE), "Subscription Identifier"},
	PropSessionExpiry:        {kUint32, in(CONNECT, CONNACK, DISCONNECT), "Session Expiry Interval"},
	PropAssignedClientID:     {kString, in(CONNACK), "Assigned Client Identifier"},
	PropServerKeepAlive:      {kUint16, in(CONNACK), "Server Keep Alive"},
	PropAuthMethod:           {kString, in(CONNECT, CONNACK, AUTH), "Authentication Method"},
	PropAuthData:             {kBinary, in(CONNECT, CONNACK, AUTH), "Authentication Data"},
	PropRequestProblemInfo:   {kByte, in(CONNECT), "Request Problem Information"},
	PropWillDelay:            {kUint32, in(willProps), "Will Delay Interval"},
	PropRequestResponseInfo:  {kByte, in(CONNECT), "Request Response Information"},
	PropResponseInfo:         {kString, in(CONNACK), "Response Information"},
	PropServerReference:      {kString, in(CONNACK, DISCONNECT), "Server Reference"},
	PropReasonString:         {kString, in(CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH), "Reason String"},
	PropReceiveMaximum:       {kUint16, in(CONNECT, CONNACK), "Receive Maximum"},
	PropTopicAliasMaximum:    {kUint16, in(CONNECT, CONNACK), "Topic Alias Maximum"},
	PropTopicAlias:           {kUint16, in(PUBLISH), "Topic Alias"},
	PropMaximumQoS:           {kByte, in(CONNACK), "Maximum QoS"},
	PropRetainAvailable:      {kByte, in(CONNACK), "Retain Available"},
	PropUser:                 {kPair, in(willProps, CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH), "User Property"},
	PropMaximumPacketSize:    {kUint32, in(CONNECT, CONNACK), "Maximum Packet Size"},
	PropWildcardSubAvailable: {kByte, in(CONNACK), "Wildcard Subscription Available"},
	PropSubIDAvailable:       {kByte, in(CONNACK), "Subscription Identifier Available"},
	PropSharedSubAvailable:   {kByte, in(CONNACK), "Shared Subscription Available"},
}

// reset empties p for a new decode, keeping slice capacity and string values
// (decodeString compares against them before replacing).
func (p *Properties) reset() {
	strs := [...]*string{&p.ContentType, &p.ResponseTopic, &p.AssignedClientID, &p.AuthMethod,
		&p.ResponseInfo, &p.ServerReference, &p.ReasonString}
	keep := *p
	*p = Properties{
		CorrelationData: keep.CorrelationData[:0],
		SubscriptionIDs: keep.SubscriptionIDs[:0],
		AuthData:        keep.AuthData[:0],
		User:            keep.User[:0],
	}
	// Strings are restored so setString can reuse an equal old value; the
	// ones the packet does not carry are cleared by decode's final pass.
	old := [...]string{keep.ContentType, keep.ResponseTopic, keep.AssignedClientID, keep.AuthMethod,
		keep.ResponseInfo, keep.ServerReference, keep.ReasonString}
	for i, s := range strs {
		*s = old[i]
	}
}

// setString stores b in *dst, reusing *dst when it already holds the same
// text (the comparison does not allocate).
func setString(dst *string, b []byte) {
	if *dst != string(b) {
		*dst = string(b)
	}
}

// decode reads a Property Length and the properties after it from b, for
// packet type t (willProps for a will). It returns the number of bytes used.
func (p *Properties) decode(b []byte, t PacketType) (int, error) {
	const op = "decode properties"
	p.reset()
	n, used, err := DecodeVarInt(b)
	if err != nil {
		return 0, fmt.Errorf("%s: property length: %w", op, err)
	}
	if uint64(n) > uint64(len(b)-used) {
		return 0, malformed(op, "property length exceeds the packet")
	}
	rest := b[used : used+int(n)]
	for len(rest) > 0 {
		id := PropID(rest[0])
		rest = rest[1:]
		if id > propMax || propTable[id].kind == 0 {
			// 2.2.2.2: an identifier that is not valid makes the packet malformed.
			return 0, malformed(op, fmt.Sprintf("unknown property 0x%02X", byte(id)))
		}
		info := propTable[id]
		if info.allowed&(1<<t) == 0 {
			return 0, malformed(op, fmt.Sprintf("%s (0x%02X) is not allowed in %s", info.name, byte(id), ctxName(t)))
		}
		if p.present&(1<<id) != 0 && id != PropUser && !(id == PropSubscriptionID && t == PUBLISH) {
			// Each property section says: "It is a Protocol Error to include
			// the <property> more than once."
			return 0, protocolErr(op, info.name+" included more than once")
		}
		p.present |= 1 << id
		k, err := p.decodeValue(id, info, rest)
		if err != nil {
			return 0, fmt.Errorf("%s: %s: %w", op, info.name, err)
		}
		rest = rest[k:]
	}
	p.clearAbsentStrings()
	return used + int(n), nil
}

func (p *Properties) clearAbsentStrings() {
	for _, f := range [...]struct {
		id PropID
		s  *string
	}{{PropContentType, &p.ContentType}, {PropResponseTopic, &p.ResponseTopic},
		{PropAssignedClientID, &p.AssignedClientID}, {PropAuthMethod, &p.AuthMethod},
		{PropResponseInfo, &p.ResponseInfo}, {PropServerReference, &p.ServerReference},
		{PropReasonString, &p.ReasonString}} {
		if p.present&(1<<f.id) == 0 {
			*f.s = ""
		}
	}
}

// decodeValue decodes one property value of the given id from b and returns
// its size.
func (p *Properties) decodeValue(id PropID, info propInfo, b []byte) (int, error) {
	switch info.kind {
	case kByte:
		if len(b) < 1 {
			return 0, ErrMalformed
		}
		v := b[0]
		if v > 1 {
			// Every byte property is a 0/1 flag: "It is a Protocol Error to
			// include a value other than 0 or 1" (Payload Format 3.3.2.3.2,
			// Request Problem Information 3.1.2.11.7, Maximum QoS 3.2.2.3.4, ...).
			return 0, fmt.Errorf("%w: value %d is not 0 or 1", ErrProtocol, v)
		}
		switch id {
		case PropPayloadFormat:
			p.PayloadFormat = v
		case PropRequestProblemInfo:
			p.RequestProblemInfo = v
		case PropRequestResponseInfo:
			p.RequestResponseInfo = v
		case PropMaximumQoS:
			p.MaximumQoS = v
		case PropRetainAvailable:
			p.RetainAvailable = v
		case PropWildcardSubAvailable:
			p.WildcardSubAvailable = v
		case PropSubIDAvailable:
			p.SubIDAvailable = v
		case PropSharedSubAvailable:
			p.SharedSubAvailable = v
		}
		return 1, nil
	case kUint16:
		if len(b) < 2 {
			return 0, ErrMalformed
		}
		v := binary.BigEndian.Uint16(b)
		switch id {
		case PropServerKeepAlive:
			p.ServerKeepAlive = v
		case PropReceiveMaximum:
			if v == 0 {
				return 0, fmt.Errorf("%w: Receive Maximum of 0", ErrProtocol) // 3.1.2.11.3
			}
			p.ReceiveMaximum = v
		case PropTopicAliasMaximum:
			p.TopicAliasMaximum = v
		case PropTopicAlias:
			if v == 0 {
				return 0, fmt.Errorf("%w: Topic Alias of 0 [MQTT-3.3.2-8]", ErrTopicAliasInvalid)
			}
			p.TopicAlias = v
		}
		return 2, nil
	case kUint32:
		if len(b) < 4 {
			return 0, ErrMalformed
		}
		v := binary.BigEndian.Uint32(b)
		switch id {
		case PropMessageExpiry:
			p.MessageExpiry = v
		case PropSessionExpiry:
			p.SessionExpiry = v
		case PropWillDelay:
			p.WillDelay = v
		case PropMaximumPacketSize:
			if v == 0 {
				return 0, fmt.Errorf("%w: Maximum Packet Size of 0", ErrProtocol) // 3.1.2.11.4
			}
			p.MaximumPacketSize = v
		}
		return 4, nil
	case kVarInt:
		v, n, err := DecodeVarInt(b)
		if err != nil {
			return 0, err
		}
		if v == 0 {
			// 3.3.2.3.8: "It is a Protocol Error if the Subscription
			// Identifier has a value of 0."
			return 0, fmt.Errorf("%w: Subscription Identifier of 0", ErrProtocol)
		}
		p.SubscriptionIDs = append(p.SubscriptionIDs, v)
		return n, nil
	case kString:
		s, n, err := DecodeString(b)
		if err != nil {
			return 0, err
		}
		switch id {
		case PropContentType:
			setString(&p.ContentType, s)
		case PropResponseTopic:
			setString(&p.ResponseTopic, s)
		case PropAssignedClientID:
			setString(&p.AssignedClientID, s)
		case PropAuthMethod:
			setString(&p.AuthMethod, s)
		case PropResponseInfo:
			setString(&p.ResponseInfo, s)
		case PropServerReference:
			setString(&p.ServerReference, s)
		case PropReasonString:
			setString(&p.ReasonString, s)
		}
		return n, nil
	case kBinary:
		s, n, err := decodeBinary(b)
		if err != nil {
			return 0, err
		}
		switch id {
		case PropCorrelationData:
			p.CorrelationData = append(p.CorrelationData[:0], s...)
		case PropAuthData:
			p.AuthData = append(p.AuthData[:0], s...)
		}
		return n, nil
	case kPair:
		k, n1, err := DecodeString(b)
		if err != nil {
			return 0, err
		}
		v, n2, err := DecodeString(b[n1:])
		if err != nil {
			return 0, err
		}
		// [MQTT-1.5.7-1] both strings follow the UTF-8 string rules.
		i := len(p.User)
		if i < cap(p.User) {
			p.User = p.User[:i+1]
		} else {
			p.User = append(p.User, UserProperty{})
		}
		setString(&p.User[i].Key, k)
		setString(&p.User[i].Value, v)
		return n1 + n2, nil
	}
	return 0, ErrMalformed
}

// appendTo appends the Property Length and the properties for packet type t.
func (p *Properties) appendTo(dst []byte, t PacketType) ([]byte, error) {
	const op = "encode properties"
	start := len(dst)
	var err error
	for id := PropID(1); id <= propMax; id++ {
		info := propTable[id]
		if info.kind == 0 || !p.wants(id) {
			continue
		}
		if info.allowed&(1<<t) == 0 {
			return dst[:start], malformed(op, fmt.Sprintf("%s is not allowed in %s", info.name, ctxName(t)))
		}
		if dst, err = p.appendValue(dst, id, info); err != nil {
			return dst[:start], fmt.Errorf("%s: %s: %w", op, info.name, err)
		}
	}
	n := len(dst) - start
	if n > MaxRemainingLength {
		return dst[:start], fmt.Errorf("%s: %w", op, ErrPacketTooLarge)
	}
	return insertVarInt(dst, start, uint32(n)), nil
}

// wants reports whether the encoder writes property id.
func (p *Properties) wants(id PropID) bool {
	if p.present&(1<<id) != 0 {
		return true
	}
	switch id {
	case PropPayloadFormat:
		return p.PayloadFormat != 0
	case PropMessageExpiry:
		return p.MessageExpiry != 0
	case PropContentType:
		return p.ContentType != ""
	case PropResponseTopic:
		return p.ResponseTopic != ""
	case PropCorrelationData:
		return len(p.CorrelationData) > 0
	case PropSubscriptionID:
		return len(p.SubscriptionIDs) > 0
	case PropSessionExpiry:
		return p.SessionExpiry != 0
	case PropAssignedClientID:
		return p.AssignedClientID != ""
	case PropServerKeepAlive:
		return p.ServerKeepAlive != 0
	case PropAuthMethod:
		return p.AuthMethod != ""
	case PropAuthData:
		return len(p.AuthData) > 0
	case PropRequestProblemInfo:
		return p.RequestProblemInfo != 0
	case PropWillDelay:
		return p.WillDelay != 0
	case PropRequestResponseInfo:
		return p.RequestResponseInfo != 0
	case PropResponseInfo:
		return p.ResponseInfo != ""
	case PropServerReference:
		return p.ServerReference != ""
	case PropReasonString:
		return p.ReasonString != ""
	case PropReceiveMaximum:
		return p.ReceiveMaximum != 0
	case PropTopicAliasMaximum:
		return p.TopicAliasMaximum != 0
	case PropTopicAlias:
		return p.TopicAlias != 0
	case PropMaximumQoS:
		return p.MaximumQoS != 0
	case PropRetainAvailable:
		return p.RetainAvailable != 0
	case PropUser:
		return len(p.User) > 0
	case PropMaximumPacketSize:
		return p.MaximumPacketSize != 0
	case PropWildcardSubAvailable:
		return p.WildcardSubAvailable != 0
	case PropSubIDAvailable:
		return p.SubIDAvailable != 0
	case PropSharedSubAvailable:
		return p.SharedSubAvailable != 0
	}
	return false
}

func (p *Properties) appendValue(dst []byte, id PropID, info propInfo) ([]byte, error) {
	var err error
	switch info.kind {
	case kByte:
		var v byte
		switch id {
		case PropPayloadFormat:
			v = p.PayloadFormat
		case PropRequestProblemInfo:
			v = p.RequestProblemInfo
		case PropRequestResponseInfo:
			v = p.RequestResponseInfo
		case PropMaximumQoS:
			v = p.MaximumQoS
		case PropRetainAvailable:
			v = p.RetainAvailable
		case PropWildcardSubAvailable:
			v = p.WildcardSubAvailable
		case PropSubIDAvailable:
			v = p.SubIDAvailable
		case PropSharedSubAvailable:
			v = p.SharedSubAvailable
		}
		if v > 1 {
			return dst, fmt.Errorf("%w: value %d is not 0 or 1", ErrProtocol, v)
		}
		return append(dst, byte(id), v), nil
	case kUint16:
		var v uint16
		switch id {
		case PropServerKeepAlive:
			v = p.ServerKeepAlive
		case PropReceiveMaximum:
			v = p.ReceiveMaximum
		case PropTopicAliasMaximum:
			v = p.TopicAliasMaximum
		case PropTopicAlias:
			v = p.TopicAlias
		}
		if v == 0 && (id == PropReceiveMaximum || id == PropTopicAlias) {
			return dst, fmt.Errorf("%w: value 0", ErrProtocol)
		}
		return binary.BigEndian.AppendUint16(append(dst, byte(id)), v), nil
	case kUint32:
		var v uint32
		switch id {
		case PropMessageExpiry:
			v = p.MessageExpiry
		case PropSessionExpiry:
			v = p.SessionExpiry
		case PropWillDelay:
			v = p.WillDelay
		case PropMaximumPacketSize:
			v = p.MaximumPacketSize
			if v == 0 {
				return dst, fmt.Errorf("%w: value 0", ErrProtocol)
			}
		}
		return binary.BigEndian.AppendUint32(append(dst, byte(id)), v), nil
	case kVarInt:
		for _, v := range p.SubscriptionIDs {
			if v == 0 {
				return dst, fmt.Errorf("%w: Subscription Identifier of 0", ErrProtocol)
			}
			dst = append(dst, byte(id))
			if dst, err = AppendVarInt(dst, v); err != nil {
				return dst, err
			}
		}
		return dst, nil
	case kString:
		var s string
		switch id {
		case PropContentType:
			s = p.ContentType
		case PropResponseTopic:
			s = p.ResponseTopic
		case PropAssignedClientID:
			s = p.AssignedClientID
		case PropAuthMethod:
			s = p.AuthMethod
		case PropResponseInfo:
			s = p.ResponseInfo
		case PropServerReference:
			s = p.ServerReference
		case PropReasonString:
			s = p.ReasonString
		}
		return appendString(append(dst, byte(id)), s)
	case kBinary:
		b := p.CorrelationData
		if id == PropAuthData {
			b = p.AuthData
		}
		return appendBinary(append(dst, byte(id)), b)
	case kPair:
		for _, u := range p.User {
			if dst, err = appendString(append(dst, byte(id)), u.Key); err != nil {
				return dst, err
			}
			if dst, err = appendString(dst, u.Value); err != nil {
				return dst, err
			}
		}
		return dst, nil
	}
	return dst, nil
}

func ctxName(t PacketType) string {
	if t == willProps {
		return "Will Properties"
	}
	return t.String()
}
