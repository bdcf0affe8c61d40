package bridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"sync"
)

// This file is given: the spool's state, its cursor file and the layout of
// a message inside a record. The record codec and the spool's operations are
// yours, in bridge.go.

// castagnoli is the CRC-32C table: the polynomial with hardware support on
// amd64 and arm64, used by ext4, iSCSI and many logs for this job.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Spool is an append-only log of records on disk with a cursor: the offset
// up to which every record has been forwarded. Append may be called
// concurrently with Next and Ack; Next and Ack have a single caller, the
// forwarder. Create it with OpenSpool and Close it when done.
type Spool struct {
	dir    string
	log    *os.File      // spool.log, opened for reading and appending
	notify chan struct{} // capacity 1: signalled by Append, waited on by Next

	mu        sync.Mutex // guards the fields below, and the file's length
	size      int64      // end of the last complete record
	read      int64      // offset of the record Next returns next
	acked     int64      // the cursor: everything before it was forwarded
	truncated int64      // bytes of torn or corrupt tail cut off by OpenSpool
	closed    bool
}

// Truncated returns the number of bytes OpenSpool cut off the end of the log
// because they did not form complete, intact records.
func (s *Spool) Truncated() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.truncated
}

// Pending returns the number of bytes of records not yet acknowledged.
func (s *Spool) Pending() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size - s.acked
}

// Close closes the log file. Appends and reads after Close return ErrClosed.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.log.Close(); err != nil {
		return fmt.Errorf("bridge: close spool: %w", err)
	}
	return nil
}

const (
	logName    = "spool.log"
	cursorName = "cursor"
)

// readCursor returns the offset saved in dir's cursor file, or 0 if there is
// none or it is damaged. 0 is always safe: it replays the whole log, and at
// least once allows duplicates.
func readCursor(dir string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, cursorName))
	if err != nil || len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		return 0
	}
	off := binary.BigEndian.Uint64(b)
	if off > math.MaxInt64 {
		return 0
	}
	return int64(off)
}

// writeCursor saves off in dir's cursor file: a temporary file renamed over
// the old one, so a reader sees the old cursor or the new one, never half of
// each. Without durable it does not fsync: after a power cut the cursor may
// be older than the last Ack, which only replays records that were already
// forwarded. With durable it fsyncs the file and the directory, so that the
// new cursor survives a power cut before the call returns.
func writeCursor(dir string, off int64, durable bool) error {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 12), uint64(off))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	tmp := filepath.Join(dir, cursorName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("bridge: write cursor: %w", err)
	}
	_, err = f.Write(b)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, cursorName))
	}
	if err == nil && durable {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("bridge: write cursor: %w", err)
	}
	return nil
}

// syncDir fsyncs a directory, which makes a rename in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// errBadMessage: a record's payload is not an encoded message.
var errBadMessage = errors.New("bridge: record is not a message")

// encodeMessage lays out an MQTT message as a record's payload: a 2-byte
// big-endian topic length, the topic, the payload.
func encodeMessage(topic string, payload []byte) ([]byte, error) {
	if len(topic) > math.MaxUint16 {
		return nil, fmt.Errorf("bridge: encode message: topic of %d bytes: %w", len(topic), ErrTooLarge)
	}
	b := make([]byte, 0, 2+len(topic)+len(payload))
	b = binary.BigEndian.AppendUint16(b, uint16(len(topic)))
	b = append(b, topic...)
	return append(b, payload...), nil
}

// decodeMessage is the inverse of encodeMessage.
func decodeMessage(b []byte) (topic string, payload []byte, err error) {
	if len(b) < 2 || int(binary.BigEndian.Uint16(b)) > len(b)-2 {
		return "", nil, errBadMessage
	}
	n := int(binary.BigEndian.Uint16(b))
	return string(b[2 : 2+n]), b[2+n:], nil
}
