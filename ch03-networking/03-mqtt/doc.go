// Package mqtt is lab 3 of chapter 3: a codec for every MQTT 3.1.1 and 5.0
// control packet, strict enough to sit at the edge of a broker that a
// million untrusted devices talk to.
//
// The lesson in a paragraph: an MQTT packet is a one-byte type-and-flags
// field, a Remaining Length written as a variable byte integer, then a body
// whose shape depends on the type. Everything a peer sends is hostile until
// proved otherwise, so the decoder checks each rule the specification
// states (and cites it, e.g. [MQTT-2.1.3-1]), refuses a packet larger than
// its limit before it allocates a byte for it, and reports every failure as
// an error that carries the MQTT 5.0 reason code to send back (0x81
// Malformed Packet, 0x82 Protocol Error, 0x95 Packet Too Large). The hot
// path, decoding a PUBLISH, reuses the caller's value and allocates nothing.
//
// # Using the codec
//
// Read packets with a [Reader]: [Reader.ReadPacket] returns a new [Packet]
// for each call, and [Reader.Next] returns the fixed header and a body that
// the caller decodes itself, for example into a reused [Publish] with
// [Publish.Decode]. A caller that buffers bytes itself (an event loop) uses
// [ParseHeader], which tells "need more bytes" (io.ErrUnexpectedEOF) from
// "bad" and refuses an oversized packet from its header alone, then
// [DecodePacket] or [Publish.Decode]; [Decode] does both for a whole
// packet. Write packets by appending them to a byte slice with
// [Packet.AppendTo], or with [Encode]. All decoded strings are copies: no
// packet value keeps a reference to the reader's buffer, and [Publish.Clone]
// makes a copy that outlives a reused value.
//
// # Versions
//
// Every encode and decode takes the [Version] the connection speaks. A
// CONNECT carries its own version; [Reader] adopts it when its Config left
// the version unset. Reason codes are always the MQTT 5.0 codes: when a 3.1.1
// CONNACK is written, the codec maps the reason code to the 3.1.1 return code
// (see [ReturnCodeV311]).
//
// # Concurrency
//
// Packet values and a [Reader] are not safe for concurrent use; the
// package-level functions are.
package mqtt

// Version is the protocol level byte of a CONNECT packet.
type Version byte

// The protocol versions this codec speaks.
const (
	// V311 is MQTT 3.1.1 (protocol level 4).
	V311 Version = 4
	// V5 is MQTT 5.0 (protocol level 5).
	V5 Version = 5
)

// String returns "3.1.1", "5.0" or "unknown(N)".
func (v Version) String() string {
	switch v {
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	}
	return "unknown(" + itoa(int(v)) + ")"
}

// PacketType is the high nibble of a packet's first byte.
type PacketType byte

// The MQTT control packet types. 0 is reserved and never valid.
const (
	CONNECT     PacketType = 1
	CONNACK     PacketType = 2
	PUBLISH     PacketType = 3
	PUBACK      PacketType = 4
	PUBREC      PacketType = 5
	PUBREL      PacketType = 6
	PUBCOMP     PacketType = 7
	SUBSCRIBE   PacketType = 8
	SUBACK      PacketType = 9
	UNSUBSCRIBE PacketType = 10
	UNSUBACK    PacketType = 11
	PINGREQ     PacketType = 12
	PINGRESP    PacketType = 13
	DISCONNECT  PacketType = 14
	AUTH        PacketType = 15 // MQTT 5.0 only
)

var typeNames = [...]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC",
	"PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ",
	"PINGRESP", "DISCONNECT", "AUTH"}

// String returns the packet type's name as the specification spells it.
func (t PacketType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "INVALID(" + itoa(int(t)) + ")"
}

// QoS is a quality of service level: 0, 1 or 2.
type QoS byte

// The three QoS levels.
const (
	AtMostOnce  QoS = 0
	AtLeastOnce QoS = 1
	ExactlyOnce QoS = 2
)

// FixedHeader is the part of every packet that comes before its body: the
// type, the four flag bits, and the Remaining Length (the body's size).
type FixedHeader struct {
	Type PacketType
	// Flags is the low nibble of the first byte. Only PUBLISH gives them a
	// meaning (DUP, QoS, RETAIN); every other type has fixed values.
	Flags byte
	// RemainingLength is the number of bytes that follow the fixed header.
	RemainingLength uint32
}

// Size returns the encoded size of the whole packet: the fixed header plus
// RemainingLength.
func (h FixedHeader) Size() int {
	return 1 + varIntLen(h.RemainingLength) + int(h.RemainingLength)
}

// Limits of the wire format.
const (
	// MaxRemainingLength is the largest value a four-byte variable byte
	// integer holds: 268,435,455 (256 MiB - 1).
	MaxRemainingLength = 268_435_455
	// MaxStringLen is the largest UTF-8 string or binary field: 65,535 bytes.
	MaxStringLen = 65_535
	// DefaultMaxPacketSize is the limit a zero Config uses: 1 MiB.
	DefaultMaxPacketSize = 1 << 20
)

// Packet is one MQTT control packet.
//
// AppendTo appends the encoded packet to dst and returns the extended slice;
// it validates the packet first and returns dst unchanged with an error
// wrapping one of the Err values if the packet is not valid for version v.
//
// Decode replaces the packet's fields with those decoded from body, the bytes
// after a fixed header h of the packet's type. It copies what it keeps, so
// body may be reused as soon as Decode returns. Values are reused where they
// can be (slices keep their capacity), so decoding into the same value again
// allocates only when a field grows.
type Packet interface {
	Type() PacketType
	AppendTo(dst []byte, v Version) ([]byte, error)
	Decode(h FixedHeader, body []byte, v Version) error
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
