//go:build !floodgate.solution

package mqtt

import "errors"

// errTODO is what the unfinished functions return.
var errTODO = errors.New("mqtt: not implemented yet (TODO)")

// AppendVarInt appends v as a Variable Byte Integer (section 1.5.5): seven
// bits per byte, least significant group first, the high bit set on every
// byte but the last. It returns an error wrapping ErrPacketTooLarge if v
// needs more than four bytes (v > MaxRemainingLength).
func AppendVarInt(dst []byte, v uint32) ([]byte, error) {
	// TODO(Task 1): append 7 bits at a time, low group first; set 0x80 on
	// every byte except the last. Refuse v > MaxRemainingLength.
	return dst, errTODO
}

// DecodeVarInt reads a Variable Byte Integer from the front of b and returns
// its value and the number of bytes it used. It returns an error wrapping
// ErrMalformed if b ends inside the integer, if the integer runs past four
// bytes, or if it uses more bytes than it needs [MQTT-1.5.5-1].
func DecodeVarInt(b []byte) (uint32, int, error) {
	// TODO(Task 1): read at most four bytes; stop at the first byte whose
	// high bit is clear. Reject a cut-short input, a fifth byte, and a
	// non-minimal encoding (which ends in a 0x00 after a continuation).
	return 0, 0, errTODO
}

// DecodeFixedHeader reads a fixed header from the front of b: the packet
// type, the flags, and the Remaining Length. It returns the header and the
// number of bytes it used, or an error wrapping ErrMalformed for the
// reserved type 0, for flags a packet type does not allow, or for a bad
// Remaining Length.
func DecodeFixedHeader(b []byte) (FixedHeader, int, error) {
	// TODO(Task 2): type = high nibble, flags = low nibble. Check the flags
	// per type: PUBLISH (no QoS 3, no DUP on QoS 0), PUBREL/SUBSCRIBE/
	// UNSUBSCRIBE (exactly 0010), everything else (0000). Then decode the
	// Remaining Length with DecodeVarInt.
	return FixedHeader{}, 0, errTODO
}

// DecodeString reads a UTF-8 Encoded String (section 1.5.4) from the front of
// b: a two-byte big-endian length, then that many bytes. It returns the
// string's bytes (a sub-slice of b, not a copy) and the number of bytes used.
// It returns an error wrapping ErrMalformed if b is too short, if the bytes
// are not well-formed UTF-8 (which excludes the surrogates U+D800 to U+DFFF
// and overlong forms) [MQTT-1.5.4-1], or if they contain U+0000
// [MQTT-1.5.4-2]. A byte order mark is kept as it is [MQTT-1.5.4-3].
func DecodeString(b []byte) ([]byte, int, error) {
	// TODO(Task 3): read the length, bounds-check it against b, then apply
	// the two content rules. Return a sub-slice: do not copy.
	return nil, 0, errTODO
}

// Decode implements [Packet]. It copies the topic and the payload into p's
// own slices, reusing their capacity, so decoding a stream of PUBLISH
// packets into one reused Publish allocates nothing once the slices have
// grown. If Decode returns an error, p's contents are unspecified.
func (p *Publish) Decode(h FixedHeader, body []byte, v Version) error {
	// TODO(Task 4): flags from h (QoS, DUP, RETAIN); topic (DecodeString);
	// packet identifier when QoS > 0 (never 0); for V5 the properties
	// (p.Properties.decode(rest, PUBLISH)); check the topic with
	// checkTopicBytes; then copy topic and payload into p's slices with
	// append(p.Topic[:0], ...) so nothing is allocated.
	return errTODO
}
