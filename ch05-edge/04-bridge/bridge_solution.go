//go:build floodgate.solution

package bridge

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// appendRecord appends payload to dst as one record: length, CRC, payload.
func appendRecord(dst, payload []byte) []byte {
	var hdr [HeaderSize]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(payload)))
	// The CRC covers the length too: a zero-filled tail (length 0, CRC 0)
	// then fails the check instead of reading as empty records.
	crc := crc32.Update(crc32.Checksum(hdr[:4], castagnoli), castagnoli, payload)
	binary.BigEndian.PutUint32(hdr[4:], crc)
	return append(append(dst, hdr[:]...), payload...)
}

// decodeRecord decodes the record at the start of b. It returns the payload
// (a subslice of b) and the record's size. It returns ErrShortRecord when b
// ends inside the record, and ErrCorrupt for a length over MaxPayload or a
// CRC that does not match.
func decodeRecord(b []byte) (payload []byte, n int, err error) {
	if len(b) < HeaderSize {
		return nil, 0, fmt.Errorf("bridge: decode: %d header bytes: %w", len(b), ErrShortRecord)
	}
	size := binary.BigEndian.Uint32(b)
	if size > MaxPayload {
		return nil, 0, fmt.Errorf("bridge: decode: length %d: %w", size, ErrCorrupt)
	}
	n = HeaderSize + int(size)
	if len(b) < n {
		return nil, 0, fmt.Errorf("bridge: decode: %d of %d bytes: %w", len(b), n, ErrShortRecord)
	}
	payload = b[HeaderSize:n]
	crc := crc32.Update(crc32.Checksum(b[:4], castagnoli), castagnoli, payload)
	if crc != binary.BigEndian.Uint32(b[4:]) {
		return nil, 0, fmt.Errorf("bridge: decode: crc mismatch: %w", ErrCorrupt)
	}
	return payload, n, nil
}

// OpenSpool opens (or creates) the spool in dir. It reads the log from the
// start, cuts off any tail that is not a complete, intact record, and
// positions Next at the saved cursor.
func OpenSpool(dir string) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bridge: open spool: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, logName), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("bridge: open spool: %w", err)
	}
	// The log may have just been created: make its name durable too, or a
	// power cut could take the file, and every record fsynced into it, away.
	if err := syncDir(dir); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("bridge: open spool: %w", err)
	}
	cursor := readCursor(dir)
	st, err := f.Stat()
	var good int64
	cursorOK := cursor == 0
	if err == nil {
		good, cursorOK, err = scan(f, cursor)
	}
	if err == nil && good < st.Size() {
		// A torn tail was never acknowledged: cut it, and make the cut
		// durable before appending after it.
		if err = f.Truncate(good); err == nil {
			err = f.Sync()
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("bridge: open spool: %w", err)
	}
	if !cursorOK {
		cursor = 0 // not on a record boundary: replay everything
	}
	return &Spool{dir: dir, log: f, notify: make(chan struct{}, 1),
		size: good, read: cursor, acked: cursor, truncated: st.Size() - good}, nil
}

// scan reads f's records from the start. It returns the end of the last
// intact record, and whether cursor is the end of one (or 0).
func scan(f *os.File, cursor int64) (good int64, cursorOK bool, err error) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, math.MaxInt64), 64<<10)
	buf := make([]byte, HeaderSize)
	cursorOK = cursor == 0
	for {
		if _, err := io.ReadFull(r, buf[:HeaderSize]); err != nil {
			return good, cursorOK, eofIsEnd(err)
		}
		size := binary.BigEndian.Uint32(buf)
		if size > MaxPayload {
			return good, cursorOK, nil // a damaged length: the log ends here
		}
		buf = slices.Grow(buf[:HeaderSize], int(size))[:HeaderSize+int(size)]
		if _, err := io.ReadFull(r, buf[HeaderSize:]); err != nil {
			return good, cursorOK, eofIsEnd(err)
		}
		_, n, err := decodeRecord(buf)
		if err != nil {
			return good, cursorOK, nil // a damaged record ends the log
		}
		good += int64(n)
		cursorOK = cursorOK || good == cursor
	}
}

// eofIsEnd turns running out of file into the end of the log.
func eofIsEnd(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}

// Append writes payload as one record and fsyncs the log. When it returns
// nil the record is on disk: only then may the caller acknowledge it.
func (s *Spool) Append(payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("bridge: append %d bytes: %w", len(payload), ErrTooLarge)
	}
	rec := appendRecord(make([]byte, 0, HeaderSize+len(payload)), payload)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("bridge: append: %w", ErrClosed)
	}
	if _, err := s.log.Write(rec); err != nil {
		_ = s.log.Truncate(s.size) // do not leave a torn record behind
		return fmt.Errorf("bridge: append: %w", err)
	}
	if err := s.log.Sync(); err != nil {
		_ = s.log.Truncate(s.size) // s.size must stay the end of the file
		return fmt.Errorf("bridge: append: fsync: %w", err)
	}
	s.size += int64(len(rec))
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

// Next returns the next record, in append order, waiting for one to be
// appended as long as ctx allows.
func (s *Spool) Next(ctx context.Context) (Record, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return Record{}, fmt.Errorf("bridge: next: %w", ErrClosed)
		}
		if s.read < s.size {
			rec, err := s.readAt(s.read)
			if err == nil {
				s.read = rec.End
			}
			s.mu.Unlock()
			return rec, err
		}
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-ctx.Done():
			return Record{}, fmt.Errorf("bridge: next: %w", context.Cause(ctx))
		}
	}
}

// readAt reads the record at off. s.mu must be held.
func (s *Spool) readAt(off int64) (Record, error) {
	var hdr [HeaderSize]byte
	if _, err := s.log.ReadAt(hdr[:], off); err != nil {
		return Record{}, fmt.Errorf("bridge: read at %d: %w", off, err)
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size > MaxPayload {
		return Record{}, fmt.Errorf("bridge: read at %d: length %d: %w", off, size, ErrCorrupt)
	}
	b := make([]byte, HeaderSize+int(size))
	if _, err := s.log.ReadAt(b, off); err != nil {
		return Record{}, fmt.Errorf("bridge: read at %d: %w", off, err)
	}
	payload, n, err := decodeRecord(b)
	if err != nil {
		return Record{}, fmt.Errorf("bridge: read at %d: %w", off, err)
	}
	return Record{Payload: payload, End: off + int64(n)}, nil
}

// Ack records that rec, and every record before it, has been forwarded, and
// saves the cursor. Once everything is forwarded and the log has reached
// CompactAt bytes, it starts the log again from empty.
func (s *Spool) Ack(rec Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("bridge: ack: %w", ErrClosed)
	}
	if rec.End <= s.acked || rec.End > s.read {
		return fmt.Errorf("bridge: ack %d: not a record Next returned after %d", rec.End, s.acked)
	}
	s.acked = rec.End
	if s.acked < s.size || s.size < CompactAt {
		return writeCursor(s.dir, s.acked, false)
	}
	// Cursor first, durably: a crash between the two steps replays the old
	// log (duplicates) instead of skipping part of the new one.
	if err := writeCursor(s.dir, 0, true); err != nil {
		return err
	}
	if err := s.log.Truncate(0); err != nil {
		return fmt.Errorf("bridge: compact: %w", err)
	}
	s.size, s.read, s.acked = 0, 0, 0
	return nil
}

// accept spools one message from the local broker, then acknowledges it.
func (b *Bridge) accept(sp *Spool, m mqtt.Message) error {
	rec, err := encodeMessage(m.Topic(), m.Payload())
	if err == nil {
		err = sp.Append(rec)
	}
	if errors.Is(err, ErrTooLarge) {
		// It can never be spooled: acknowledge it, or the broker would
		// send it again forever, and count it.
		b.dropped.Add(1)
		b.log.Warn("dropped a message too large for the spool", "topic", m.Topic(), "bytes", len(m.Payload()))
		m.Ack()
		return nil
	}
	if err != nil {
		return err // no PUBACK: the message stays the local broker's
	}
	m.Ack() // PUBACK, now that the record is on disk
	b.accepted.Add(1)
	return nil
}

// forward publishes the spool's records upstream, one at a time, in order,
// until ctx is done. It returns nil then, or the spool's error.
func (b *Bridge) forward(ctx context.Context, sp *Spool, up mqtt.Client) error {
	for {
		rec, err := sp.Next(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		topic, payload, err := decodeMessage(rec.Payload)
		if err != nil {
			b.log.Error("skipping a spool record that is not a message", "end", rec.End)
		} else if !b.publish(ctx, up, topic, payload) {
			return nil
		}
		if err := sp.Ack(rec); err != nil {
			return err
		}
		b.forwarded.Add(1)
	}
}

// publish publishes one message with QoS 1 until the upstream acknowledges
// it (true) or ctx is done (false).
func (b *Bridge) publish(ctx context.Context, up mqtt.Client, topic string, payload []byte) bool {
	for {
		if up.IsConnectionOpen() {
			tok := up.Publish(topic, 1, false, payload)
			timeout := time.NewTimer(b.cfg.PublishTimeout)
			select {
			case <-tok.Done():
			case <-timeout.C:
			case <-ctx.Done():
			}
			timeout.Stop()
			if ctx.Err() != nil {
				return false
			}
			select {
			case <-tok.Done():
				if tok.Error() == nil {
					return true
				}
				b.log.Warn("upstream: publish failed, will retry", "topic", topic, "err", tok.Error())
			default:
				b.log.Warn("upstream: no PUBACK in time, will publish again", "topic", topic)
			}
		}
		retry := time.NewTimer(b.cfg.RetryInterval)
		select {
		case <-retry.C:
		case <-ctx.Done():
			retry.Stop()
			return false
		}
	}
}
