package mqtt

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Config configures a [Reader]. The zero value works.
type Config struct {
	// MaxPacketSize is the largest packet, fixed header included, that the
	// Reader accepts; a larger one fails with ErrPacketTooLarge before its
	// body is read or any memory is allocated for it. 0 means
	// DefaultMaxPacketSize (1 MiB). A server advertises the same figure to
	// its clients in the CONNACK's Maximum Packet Size property.
	MaxPacketSize int
	// Version is the protocol version of the connection. 0 means unknown:
	// the first packet must then be a CONNECT [MQTT-3.1.0-1], and
	// ReadPacket adopts its version.
	Version Version
	// BufferSize is the size of the bufio.Reader the Reader wraps around
	// its source when the source is not already a *bufio.Reader. 0 means
	// 4096 bytes.
	BufferSize int
}

// Reader reads MQTT packets from a byte stream. It keeps one body buffer,
// which grows to the largest packet read so far and never beyond
// MaxPacketSize. A Reader is not safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	max     int
	version Version
	buf     []byte
}

// NewReader returns a Reader that reads from r with the limits in cfg.
func NewReader(r io.Reader, cfg Config) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		size := cfg.BufferSize
		if size <= 0 {
			size = 4096
		}
		br = bufio.NewReaderSize(r, size)
	}
	max := cfg.MaxPacketSize
	if max <= 0 {
		max = DefaultMaxPacketSize
	}
	if max > MaxRemainingLength+5 {
		max = MaxRemainingLength + 5
	}
	return &Reader{br: br, max: max, version: cfg.Version}
}

// Version returns the protocol version the Reader decodes with; 0 until it is
// known.
func (r *Reader) Version() Version { return r.version }

// SetVersion sets the protocol version the Reader decodes with.
func (r *Reader) SetVersion(v Version) { r.version = v }

// Next reads one packet's fixed header and body. The body is valid only until
// the next call to Next or ReadPacket. Next returns io.EOF if the stream
// ends cleanly before a packet, io.ErrUnexpectedEOF (wrapped) if it ends
// inside one, and an error wrapping ErrMalformed or ErrPacketTooLarge for a
// bad fixed header; after such an error the stream is out of step and the
// connection must be closed.
func (r *Reader) Next() (FixedHeader, []byte, error) {
	const op = "read packet"
	var hb [5]byte
	first, err := r.br.ReadByte()
	if err != nil {
		return FixedHeader{}, nil, err // io.EOF here is a clean end
	}
	hb[0] = first
	n := 1
	for {
		c, err := r.br.ReadByte()
		if err != nil {
			return FixedHeader{}, nil, fmt.Errorf("%s: fixed header: %w", op, noEOF(err))
		}
		hb[n] = c
		n++
		// The continuation bit says whether another length byte follows;
		// DecodeFixedHeader rejects a fifth one [MQTT-1.5.5-1].
		if c&0x80 == 0 || n == len(hb) {
			break
		}
	}
	h, _, err := DecodeFixedHeader(hb[:n])
	if err != nil {
		return FixedHeader{}, nil, fmt.Errorf("%s: %w", op, err)
	}
	// Enforce the limit before allocating: the Remaining Length is the
	// peer's claim, and believing it would let one CONNECT reserve 256 MiB.
	if size := h.Size(); size > r.max {
		return h, nil, fmt.Errorf("%s: %s of %d bytes exceeds the limit of %d: %w",
			op, h.Type, size, r.max, ErrPacketTooLarge)
	}
	need := int(h.RemainingLength)
	if cap(r.buf) < need {
		r.buf = make([]byte, need)
	}
	body := r.buf[:need]
	if _, err := io.ReadFull(r.br, body); err != nil {
		return h, nil, fmt.Errorf("%s: %s body: %w", op, h.Type, noEOF(err))
	}
	return h, body, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ReadPacket reads and decodes the next packet into a new value. If the
// Reader's version is 0, the packet must be a CONNECT [MQTT-3.1.0-1], and
// the Reader adopts the version the CONNECT names.
func (r *Reader) ReadPacket() (Packet, error) {
	h, body, err := r.Next()
	if err != nil {
		return nil, err
	}
	if r.version == 0 && h.Type != CONNECT {
		return nil, fmt.Errorf("read packet: %w: %s before CONNECT [MQTT-3.1.0-1]", ErrProtocol, h.Type)
	}
	p, err := DecodePacket(h, body, r.version)
	if err != nil {
		return nil, err
	}
	if c, ok := p.(*Connect); ok && r.version == 0 {
		r.version = c.Version
	}
	return p, nil
}

// NewPacket returns a new, empty packet of type t, or an error wrapping
// ErrMalformed for the reserved type 0 or a type above 15.
func NewPacket(t PacketType) (Packet, error) {
	switch t {
	case CONNECT:
		return new(Connect), nil
	case CONNACK:
		return new(Connack), nil
	case PUBLISH:
		return new(Publish), nil
	case PUBACK:
		return new(PubAck), nil
	case PUBREC:
		return new(PubRec), nil
	case PUBREL:
		return new(PubRel), nil
	case PUBCOMP:
		return new(PubComp), nil
	case SUBSCRIBE:
		return new(Subscribe), nil
	case SUBACK:
		return new(SubAck), nil
	case UNSUBSCRIBE:
		return new(Unsubscribe), nil
	case UNSUBACK:
		return new(UnsubAck), nil
	case PINGREQ:
		return new(PingReq), nil
	case PINGRESP:
		return new(PingResp), nil
	case DISCONNECT:
		return new(Disconnect), nil
	case AUTH:
		return new(Auth), nil
	}
	return nil, malformed("new packet", "reserved packet type "+itoa(int(t))+" [MQTT-2.1.2]")
}

// DecodePacket decodes a packet's body into a new value of the type h names.
func DecodePacket(h FixedHeader, body []byte, v Version) (Packet, error) {
	p, err := NewPacket(h.Type)
	if err != nil {
		return nil, err
	}
	if err := p.Decode(h, body, v); err != nil {
		return nil, err
	}
	return p, nil
}

// ParseHeader parses the fixed header at the front of b, for callers that
// buffer bytes themselves (an event loop, for instance). It returns the
// header and its size. It returns an error wrapping io.ErrUnexpectedEOF if
// b holds only part of the header, so the caller should read more; an error
// wrapping ErrPacketTooLarge if the whole packet would be larger than maxSize
// (0 means DefaultMaxPacketSize), before any of its body has arrived; and an
// error wrapping ErrMalformed for a bad header. Whether the body is all in b
// is the caller's check: len(b) >= n + int(h.RemainingLength).
func ParseHeader(b []byte, maxSize int) (FixedHeader, int, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxPacketSize
	}
	// Gather the Remaining Length bytes as Reader.Next does, so that a
	// short buffer reads as "need more" and not as malformed.
	n := 1
	for {
		if n >= len(b) {
			return FixedHeader{}, 0, fmt.Errorf("parse header: %w", io.ErrUnexpectedEOF)
		}
		n++
		if b[n-1]&0x80 == 0 || n == 5 {
			break
		}
	}
	h, hl, err := DecodeFixedHeader(b[:n])
	if err != nil {
		return FixedHeader{}, 0, fmt.Errorf("parse header: %w", err)
	}
	if size := h.Size(); size > maxSize {
		return h, hl, fmt.Errorf("parse header: %s of %d bytes exceeds the limit of %d: %w", h.Type, size, maxSize, ErrPacketTooLarge)
	}
	return h, hl, nil
}

// Decode decodes one whole packet from the front of b into a new value and
// returns it with the number of bytes it used. It returns an error wrapping
// io.ErrUnexpectedEOF if b holds only part of a packet, and the errors of
// ParseHeader and of the packet's Decode otherwise.
func Decode(b []byte, v Version, maxSize int) (Packet, int, error) {
	h, hl, err := ParseHeader(b, maxSize)
	if err != nil {
		return nil, 0, fmt.Errorf("decode: %w", err)
	}
	end := hl + int(h.RemainingLength)
	if end > len(b) {
		return nil, 0, fmt.Errorf("decode: %s body: %w", h.Type, io.ErrUnexpectedEOF)
	}
	p, err := DecodePacket(h, b[hl:end], v)
	if err != nil {
		return nil, 0, err
	}
	return p, end, nil
}

// Encode appends packet p, encoded for version v, to dst. It is
// p.AppendTo(dst, v).
func Encode(dst []byte, p Packet, v Version) ([]byte, error) { return p.AppendTo(dst, v) }

// ---- primitives shared by the packets ----

// varIntLen returns how many bytes AppendVarInt writes for v.
func varIntLen(v uint32) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	}
	return 4
}

// insertVarInt inserts the variable byte integer v at dst[at:], moving what
// follows. v must be at most MaxRemainingLength (callers check).
func insertVarInt(dst []byte, at int, v uint32) []byte {
	n := varIntLen(v)
	var tmp [4]byte
	enc, _ := AppendVarInt(tmp[:0], v)
	dst = append(dst, tmp[:n]...) // grow by n
	copy(dst[at+n:], dst[at:len(dst)-n])
	copy(dst[at:], enc)
	return dst
}

// finish turns dst[start:], which holds a packet's body, into a whole packet by
// inserting the fixed header in front of it.
func finish(dst []byte, start int, t PacketType, flags byte) ([]byte, error) {
	n := len(dst) - start
	if n > MaxRemainingLength {
		return dst[:start], fmt.Errorf("encode %s: body of %d bytes: %w", t, n, ErrPacketTooLarge)
	}
	dst = insertVarInt(dst, start, uint32(n))
	dst = append(dst, 0)
	copy(dst[start+1:], dst[start:len(dst)-1])
	dst[start] = byte(t)<<4 | flags
	return dst, nil
}

// appendString appends s as a UTF-8 Encoded String: a two-byte length and the
// bytes, after checking the rules of section 1.5.4 with DecodeString.
func appendString(dst []byte, s string) ([]byte, error) {
	if len(s) > MaxStringLen {
		return dst, fmt.Errorf("string of %d bytes: %w", len(s), ErrPacketTooLarge)
	}
	start := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	dst = append(dst, s...)
	if _, _, err := DecodeString(dst[start:]); err != nil {
		return dst[:start], err
	}
	return dst, nil
}

// appendBinary appends b as Binary Data: a two-byte length and the bytes.
func appendBinary(dst []byte, b []byte) ([]byte, error) {
	if len(b) > MaxStringLen {
		return dst, fmt.Errorf("binary field of %d bytes: %w", len(b), ErrPacketTooLarge)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b)))
	return append(dst, b...), nil
}

// decodeBinary reads Binary Data (section 1.5.6) from the front of b.
func decodeBinary(b []byte) ([]byte, int, error) {
	if len(b) < 2 {
		return nil, 0, fmt.Errorf("%w: binary data length cut short", ErrMalformed)
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b)-2 < n {
		return nil, 0, fmt.Errorf("%w: binary data of %d bytes overruns the packet", ErrMalformed, n)
	}
	return b[2 : 2+n], 2 + n, nil
}

// dec is a cursor over a packet body. Each method records the first error
// and turns later calls into no-ops, so decoders read straight through and
// check err once.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *dec) byte1(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail(fmt.Errorf("%w: %s missing", ErrMalformed, what))
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *dec) uint16(what string) uint16 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 2 {
		d.fail(fmt.Errorf("%w: %s missing", ErrMalformed, what))
		return 0
	}
	v := binary.BigEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}

func (d *dec) str(what string) []byte {
	if d.err != nil {
		return nil
	}
	s, n, err := DecodeString(d.b)
	if err != nil {
		d.fail(fmt.Errorf("%s: %w", what, err))
		return nil
	}
	d.b = d.b[n:]
	return s
}

func (d *dec) bin(what string) []byte {
	if d.err != nil {
		return nil
	}
	s, n, err := decodeBinary(d.b)
	if err != nil {
		d.fail(fmt.Errorf("%s: %w", what, err))
		return nil
	}
	d.b = d.b[n:]
	return s
}

func (d *dec) props(p *Properties, t PacketType) {
	if d.err != nil {
		return
	}
	n, err := p.decode(d.b, t)
	if err != nil {
		d.fail(err)
		return
	}
	d.b = d.b[n:]
}

// end fails unless the whole body was used.
func (d *dec) end() {
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Errorf("%w: %d bytes left over after the packet's last field", ErrMalformed, len(d.b)))
	}
}

// wrap adds the operation to the first error, if any.
func (d *dec) wrap(t PacketType) error {
	if d.err == nil {
		return nil
	}
	return fmt.Errorf("decode %s: %w", t, d.err)
}

// checkFlags is the fixed-header flag rule for all types but PUBLISH, for
// decoders called with a hand-made FixedHeader.
func checkFlags(h FixedHeader, t PacketType) error {
	if h.Type != t {
		return fmt.Errorf("decode %s: %w: fixed header is for %s", t, ErrMalformed, h.Type)
	}
	want := byte(0)
	if t == PUBREL || t == SUBSCRIBE || t == UNSUBSCRIBE {
		want = 2
	}
	if t != PUBLISH && h.Flags != want {
		return fmt.Errorf("decode %s: %w: reserved flags %04b, want %04b [MQTT-2.1.3-1]", t, ErrMalformed, h.Flags, want)
	}
	return nil
}

func checkVersion(op string, v Version) error {
	if v != V311 && v != V5 {
		return fmt.Errorf("%s: %w: %d", op, ErrUnsupportedVersion, byte(v))
	}
	return nil
}
