//go:build !floodgate.solution

package bridge

import (
	"context"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// appendRecord appends payload to dst as one record: length, CRC, payload.
func appendRecord(dst, payload []byte) []byte {
	// TODO(Task 1): a 4-byte big-endian length, a 4-byte big-endian CRC-32C
	// (table castagnoli) of the length bytes and the payload, the payload.
	_ = payload
	return dst
}

// decodeRecord decodes the record at the start of b. It returns the payload
// (a subslice of b) and the record's size. It returns ErrShortRecord when b
// ends inside the record, and ErrCorrupt for a length over MaxPayload or a
// CRC that does not match.
func decodeRecord(b []byte) (payload []byte, n int, err error) {
	// TODO(Task 1): check the header is there, the length is at most
	// MaxPayload, the whole record is there, and the CRC matches.
	_ = b
	return nil, 0, ErrNotImplemented
}

// OpenSpool opens (or creates) the spool in dir. It reads the log from the
// start, cuts off any tail that is not a complete, intact record, and
// positions Next at the saved cursor.
func OpenSpool(dir string) (*Spool, error) {
	// TODO(Task 2): create dir; open spool.log with O_APPEND; read the
	// records from the start to find the end of the last intact one;
	// truncate and fsync if the file is longer; start Next at
	// readCursor(dir) if that falls on a record boundary, else at 0.
	_ = dir
	return nil, ErrNotImplemented
}

// Append writes payload as one record and fsyncs the log. When it returns
// nil the record is on disk: only then may the caller acknowledge it.
func (s *Spool) Append(payload []byte) error {
	// TODO(Task 2): refuse payloads over MaxPayload (ErrTooLarge); under
	// s.mu write the record, fsync, grow s.size, signal s.notify.
	_ = payload
	return ErrNotImplemented
}

// Next returns the next record, in append order, waiting for one to be
// appended as long as ctx allows.
func (s *Spool) Next(ctx context.Context) (Record, error) {
	// TODO(Task 2): if s.read < s.size, read the record there (ReadAt)
	// and move s.read; otherwise wait on s.notify or ctx.Done().
	_ = ctx
	return Record{}, ErrNotImplemented
}

// Ack records that rec, and every record before it, has been forwarded, and
// saves the cursor. Once everything is forwarded and the log has reached
// CompactAt bytes, it starts the log again from empty.
func (s *Spool) Ack(rec Record) error {
	// TODO(Task 2): move s.acked to rec.End and writeCursor; compact when
	// s.acked == s.size >= CompactAt (durable cursor 0 first, then truncate).
	_ = rec
	return ErrNotImplemented
}

// accept spools one message from the local broker, then acknowledges it.
func (b *Bridge) accept(sp *Spool, m mqtt.Message) error {
	// TODO(Task 3): encodeMessage, sp.Append, and only then m.Ack() and
	// count it in b.accepted. A message too large for the spool is
	// acknowledged and counted in b.dropped; any other error is returned
	// without acknowledging.
	_, _ = sp, m
	return ErrNotImplemented
}

// forward publishes the spool's records upstream, one at a time, in order,
// until ctx is done. It returns nil then, or the spool's error.
func (b *Bridge) forward(ctx context.Context, sp *Spool, up mqtt.Client) error {
	// TODO(Task 4): loop: sp.Next, decodeMessage, publish with QoS 1 until
	// the upstream acknowledges (waiting b.cfg.RetryInterval between
	// tries, and only while up.IsConnectionOpen()), then sp.Ack and count
	// it in b.forwarded.
	_, _ = sp, up
	<-ctx.Done()
	return nil
}
