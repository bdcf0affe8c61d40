package sink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// Record is one message bound for the sink.
type Record struct {
	Time     time.Time `json:"time"`
	ClientID string    `json:"clientId,omitempty"`
	Topic    string    `json:"topic"`
	QoS      byte      `json:"qos"`
	Retain   bool      `json:"retain,omitempty"`
	Payload  []byte    `json:"payload"` // base64 in JSON
}

// The on-disk framing, shared by the file log and the spool:
//
//	frame  = length (uint32, big endian) | crc (uint32, CRC-32C of body) | body
//	body   = version (1) | unix nanos (int64) | qos (1) | flags (1, bit 0 retain)
//	         | topic length (uint16) | topic | client length (uint16) | client
//	         | payload (the rest)
//
// A frame is either whole and valid or it ends the readable log: a torn tail
// (the process died mid-write) is cut off, never half read.
const (
	frameHeader   = 8
	bodyFixed     = 1 + 8 + 1 + 1 + 2 + 2
	recordVersion = 1
	// MaxRecordBytes bounds one encoded record body; a larger length field
	// is taken for corruption.
	MaxRecordBytes = 16 << 20
)

// ErrTorn is returned by DecodeFrames when bytes follow the last valid
// frame: a torn or corrupt tail.
var ErrTorn = errors.New("sink: torn or corrupt record")

// ErrTooLarge is returned for a record whose encoding exceeds
// MaxRecordBytes, or whose topic or client id exceeds 65535 bytes.
var ErrTooLarge = errors.New("sink: record too large")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameSize is the encoded size of r, frame header included.
func frameSize(r Record) int {
	return frameHeader + bodyFixed + len(r.Topic) + len(r.ClientID) + len(r.Payload)
}

// AppendFrame appends r's frame to dst.
func AppendFrame(dst []byte, r Record) ([]byte, error) {
	if len(r.Topic) > 0xFFFF || len(r.ClientID) > 0xFFFF || frameSize(r)-frameHeader > MaxRecordBytes {
		return dst, fmt.Errorf("sink encode %q: %w", r.Topic, ErrTooLarge)
	}
	start := len(dst)
	dst = append(dst, make([]byte, frameHeader)...)
	dst = append(dst, recordVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Time.UnixNano()))
	var flags byte
	if r.Retain {
		flags = 1
	}
	dst = append(dst, r.QoS, flags)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(r.Topic)))
	dst = append(dst, r.Topic...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(r.ClientID)))
	dst = append(dst, r.ClientID...)
	dst = append(dst, r.Payload...)
	body := dst[start+frameHeader:]
	binary.BigEndian.PutUint32(dst[start:], uint32(len(body)))
	binary.BigEndian.PutUint32(dst[start+4:], crc32.Checksum(body, castagnoli))
	return dst, nil
}

// DecodeFrames decodes the whole, valid frames at the start of b, at most
// max of them (max <= 0: no limit). n is the number of bytes they take. err
// is nil when the frames end exactly at len(b) or max stopped the decoding,
// ErrTorn when bytes follow the last valid frame that do not make a valid
// frame (an incomplete frame, a bad length, a CRC mismatch, a bad body): the
// caller truncates the log to n. Payloads alias nothing in b.
func DecodeFrames(b []byte, max int) (recs []Record, n int, err error) {
	for n < len(b) {
		if max > 0 && len(recs) == max {
			return recs, n, nil
		}
		r, size, ok := decodeFrame(b[n:])
		if !ok {
			return recs, n, ErrTorn
		}
		recs = append(recs, r)
		n += size
	}
	return recs, n, nil
}

func decodeFrame(b []byte) (Record, int, bool) {
	if len(b) < frameHeader {
		return Record{}, 0, false
	}
	size := binary.BigEndian.Uint32(b)
	if size < bodyFixed || size > MaxRecordBytes || uint64(len(b)-frameHeader) < uint64(size) {
		return Record{}, 0, false
	}
	body := b[frameHeader : frameHeader+int(size)]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return Record{}, 0, false
	}
	r, ok := decodeBody(body)
	return r, frameHeader + int(size), ok
}

func decodeBody(b []byte) (Record, bool) {
	if len(b) < bodyFixed || b[0] != recordVersion || b[9] > 2 || b[10] > 1 {
		return Record{}, false
	}
	r := Record{
		Time:   time.Unix(0, int64(binary.BigEndian.Uint64(b[1:]))).UTC(),
		QoS:    b[9],
		Retain: b[10] == 1,
	}
	rest := b[11:]
	tl := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) < tl+2 {
		return Record{}, false
	}
	r.Topic = string(rest[:tl])
	rest = rest[tl:]
	cl := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) < cl {
		return Record{}, false
	}
	r.ClientID = string(rest[:cl])
	r.Payload = append([]byte(nil), rest[cl:]...)
	return r, true
}
