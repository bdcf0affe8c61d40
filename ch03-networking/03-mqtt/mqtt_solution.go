//go:build floodgate.solution

package mqtt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// AppendVarInt appends v as a Variable Byte Integer (section 1.5.5): seven
// bits per byte, least significant group first, the high bit set on every
// byte but the last. It returns an error wrapping ErrPacketTooLarge if v
// needs more than four bytes (v > MaxRemainingLength).
func AppendVarInt(dst []byte, v uint32) ([]byte, error) {
	if v > MaxRemainingLength {
		return dst, fmt.Errorf("encode variable byte integer %d: %w: more than four bytes", v, ErrPacketTooLarge)
	}
	for {
		b := byte(v & 0x7F)
		v >>= 7
		if v == 0 {
			return append(dst, b), nil
		}
		dst = append(dst, b|0x80)
	}
}

// DecodeVarInt reads a Variable Byte Integer from the front of b and returns
// its value and the number of bytes it used. It returns an error wrapping
// ErrMalformed if b ends inside the integer, if the integer runs past four
// bytes, or if it uses more bytes than it needs [MQTT-1.5.5-1].
func DecodeVarInt(b []byte) (uint32, int, error) {
	var v uint32
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, fmt.Errorf("%w: variable byte integer cut short after %d bytes", ErrMalformed, i)
		}
		c := b[i]
		v |= uint32(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			// A last byte of 0 after a continuation adds nothing: the
			// value fits in fewer bytes, so the encoding is not minimal.
			if i > 0 && c == 0 {
				return 0, 0, fmt.Errorf("%w: variable byte integer uses %d bytes where fewer suffice [MQTT-1.5.5-1]", ErrMalformed, i+1)
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: variable byte integer longer than four bytes", ErrMalformed)
}

// DecodeFixedHeader reads a fixed header from the front of b: the packet
// type, the flags, and the Remaining Length. It returns the header and the
// number of bytes it used, or an error wrapping ErrMalformed for the
// reserved type 0, for flags a packet type does not allow, or for a bad
// Remaining Length.
func DecodeFixedHeader(b []byte) (FixedHeader, int, error) {
	const op = "fixed header"
	if len(b) < 2 {
		return FixedHeader{}, 0, fmt.Errorf("%s: %w: cut short", op, ErrMalformed)
	}
	t := PacketType(b[0] >> 4)
	flags := b[0] & 0x0F
	switch t {
	case 0:
		// Type 0 is reserved; no packet uses it.
		return FixedHeader{}, 0, fmt.Errorf("%s: %w: reserved packet type 0", op, ErrMalformed)
	case PUBLISH:
		// The only type whose flags carry data: DUP, QoS (2 bits), RETAIN.
		qos := flags >> 1 & 0x03
		if qos == 3 {
			return FixedHeader{}, 0, fmt.Errorf("%s: %w: PUBLISH with QoS 3 [MQTT-3.3.1-4]", op, ErrMalformed)
		}
		if qos == 0 && flags&0x08 != 0 {
			return FixedHeader{}, 0, fmt.Errorf("%s: %w: DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2]", op, ErrMalformed)
		}
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		// [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1]: 0,0,1,0.
		if flags != 0x02 {
			return FixedHeader{}, 0, fmt.Errorf("%s: %w: %s flags %04b, want 0010 [MQTT-2.1.3-1]", op, ErrMalformed, t, flags)
		}
	default:
		// Every other type reserves all four bits as 0 [MQTT-2.1.3-1].
		if flags != 0 {
			return FixedHeader{}, 0, fmt.Errorf("%s: %w: %s flags %04b, want 0000 [MQTT-2.1.3-1]", op, ErrMalformed, t, flags)
		}
	}
	n, used, err := DecodeVarInt(b[1:])
	if err != nil {
		return FixedHeader{}, 0, fmt.Errorf("%s: remaining length: %w", op, err)
	}
	return FixedHeader{Type: t, Flags: flags, RemainingLength: n}, 1 + used, nil
}

// DecodeString reads a UTF-8 Encoded String (section 1.5.4) from the front of
// b: a two-byte big-endian length, then that many bytes. It returns the
// string's bytes (a sub-slice of b, not a copy) and the number of bytes used.
// It returns an error wrapping ErrMalformed if b is too short, if the bytes
// are not well-formed UTF-8 (which excludes the surrogates U+D800 to U+DFFF
// and overlong forms) [MQTT-1.5.4-1], or if they contain U+0000
// [MQTT-1.5.4-2]. A byte order mark is kept as it is [MQTT-1.5.4-3].
func DecodeString(b []byte) ([]byte, int, error) {
	if len(b) < 2 {
		return nil, 0, fmt.Errorf("%w: string length cut short", ErrMalformed)
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b)-2 < n {
		return nil, 0, fmt.Errorf("%w: string of %d bytes overruns the packet", ErrMalformed, n)
	}
	s := b[2 : 2+n]
	if !utf8.Valid(s) {
		return nil, 0, fmt.Errorf("%w: string is not well-formed UTF-8 [MQTT-1.5.4-1]", ErrMalformed)
	}
	if bytes.IndexByte(s, 0) >= 0 {
		return nil, 0, fmt.Errorf("%w: string contains U+0000 [MQTT-1.5.4-2]", ErrMalformed)
	}
	return s, 2 + n, nil
}

// Decode implements [Packet]. It copies the topic and the payload into p's
// own slices, reusing their capacity, so decoding a stream of PUBLISH
// packets into one reused Publish allocates nothing once the slices have
// grown. If Decode returns an error, p's contents are unspecified.
func (p *Publish) Decode(h FixedHeader, body []byte, v Version) error {
	const op = "decode PUBLISH"
	if h.Type != PUBLISH {
		return fmt.Errorf("%s: %w: fixed header is for %s", op, ErrMalformed, h.Type)
	}
	if err := checkVersion(op, v); err != nil {
		return err
	}
	qos := QoS(h.Flags >> 1 & 0x03)
	if qos > ExactlyOnce {
		return fmt.Errorf("%s: %w: QoS 3 [MQTT-3.3.1-4]", op, ErrMalformed)
	}
	dup := h.Flags&0x08 != 0
	if dup && qos == AtMostOnce {
		return fmt.Errorf("%s: %w: DUP set on a QoS 0 message [MQTT-3.3.1-2]", op, ErrMalformed)
	}
	// [MQTT-3.3.2-1] the Topic Name comes first, as a UTF-8 Encoded String.
	topic, n, err := DecodeString(body)
	if err != nil {
		return fmt.Errorf("%s: topic name: %w", op, err)
	}
	rest := body[n:]
	var id uint16
	if qos > AtMostOnce {
		if len(rest) < 2 {
			return fmt.Errorf("%s: %w: packet identifier missing", op, ErrMalformed)
		}
		id = binary.BigEndian.Uint16(rest)
		rest = rest[2:]
		if id == 0 {
			return fmt.Errorf("%s: %w: packet identifier 0 [MQTT-2.2.1-3]", op, ErrProtocol)
		}
	}
	if v == V5 {
		n, err := p.Properties.decode(rest, PUBLISH)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		rest = rest[n:]
	} else {
		p.Properties = Properties{}
	}
	// Empty only with a Topic Alias (5.0), never a wildcard [MQTT-3.3.2-2].
	if err := checkTopicBytes(topic, v, p.Properties.TopicAlias != 0); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	p.Dup, p.QoS, p.Retain, p.PacketID = dup, qos, h.Flags&0x01 != 0, id
	p.Topic = append(p.Topic[:0], topic...)
	// The payload is whatever is left; its length is implied, not sent.
	p.Payload = append(p.Payload[:0], rest...)
	return nil
}
