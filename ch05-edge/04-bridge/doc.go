// Package bridge forwards chosen topics from a gateway's local MQTT broker to
// an upstream broker, and stores them on disk while the upstream cannot be
// reached: store and forward.
//
// The bridge is an MQTT client of both brokers. It subscribes to
// Config.Topics on the local broker with QoS 1 and acknowledges each message
// itself, and only once the message is in the spool, an append-only log on
// disk. A separate loop reads the spool in order and publishes each record
// upstream with QoS 1; once the upstream has acknowledged it, the spool's
// cursor moves past it.
//
// # What "accepted" means
//
// A message is accepted when the bridge has sent its PUBACK to the local
// broker. From then on the local broker forgets it, and only the bridge can
// deliver it. The bridge sends that PUBACK only after the message's record
// has been written to the spool and the spool file fsynced. So an accepted
// message survives the bridge being killed at any instant (the record is in
// the file) and the machine losing power (the record is on the disk). A
// message that was not accepted yet is still the local broker's: with a
// persistent session (CleanSession false, a fixed client ID) it delivers the
// message again when the bridge reconnects.
//
// Delivery upstream is at least once: after a crash the bridge replays every
// record past the last cursor it saved, so the upstream may see a message
// twice, never zero times, and always in the order the bridge accepted them.
//
// # The spool's format
//
// The spool is a directory holding spool.log and cursor. spool.log is a
// sequence of records:
//
//	length  uint32, big endian: the number of payload bytes
//	crc     uint32, big endian: CRC-32C (Castagnoli) of the 4 length bytes and the payload
//	payload length bytes
//
// A record cut short by a crash (a torn tail) or damaged (a CRC mismatch,
// including the zero-filled blocks a file system can leave after a power
// cut) ends the log: OpenSpool truncates the file there. Only an
// unacknowledged, unfinished append can be torn, because each append is
// fsynced before the next one starts.
package bridge

import (
	"errors"
	"time"
)

// Sizes of the spool's records.
const (
	// HeaderSize is the size of a record's length and CRC.
	HeaderSize = 8
	// MaxPayload is the largest record payload the spool accepts (and the
	// largest length the decoder believes): 4 MiB.
	MaxPayload = 4 << 20
	// CompactAt is the size of log at which the spool starts it again from
	// empty, once every record in it has been forwarded: 1 MiB.
	CompactAt = 1 << 20
)

// Defaults for the zero Config.
const (
	DefaultClientID       = "floodgate-bridge"
	DefaultRetryInterval  = time.Second
	DefaultPublishTimeout = 10 * time.Second
)

// Config says which brokers to bridge, which topics, and where to spool.
// Local, Upstream, Topics and SpoolDir are required; every other field's
// zero value means its default.
type Config struct {
	// Local and Upstream are the brokers' TCP addresses, host:port.
	Local, Upstream string
	// Topics are the MQTT topic filters to forward, e.g. "sensors/#".
	Topics []string
	// SpoolDir is the directory of the spool. It is created if missing.
	SpoolDir string
	// ClientID is the bridge's client ID on the local broker (the upstream
	// one adds "-up"). It must stay the same across restarts, so that the
	// local broker keeps the bridge's session. Default DefaultClientID.
	ClientID string
	// RetryInterval is the wait between attempts to connect, and before
	// publishing a record again after a failure. Default DefaultRetryInterval.
	RetryInterval time.Duration
	// PublishTimeout bounds the wait for the upstream's PUBACK, after which
	// the record is published again. Default DefaultPublishTimeout.
	PublishTimeout time.Duration
}

// Record is one record read from the spool.
type Record struct {
	// Payload is the record's payload. It belongs to the caller.
	Payload []byte
	// End is the offset just past the record in spool.log.
	End int64
}

// Stats counts what a bridge has done since it started.
type Stats struct {
	Accepted  uint64 // messages spooled and acknowledged to the local broker
	Forwarded uint64 // records acknowledged by the upstream broker
	Dropped   uint64 // messages too large for the spool: acknowledged, not forwarded
}

// Errors returned by this package. Each is wrapped with the operation that
// failed; test with errors.Is.
var (
	// ErrBadConfig: a required Config field is missing or a field is out of range.
	ErrBadConfig = errors.New("bridge: bad config")
	// ErrShortRecord: the bytes end before the record does (a torn tail).
	ErrShortRecord = errors.New("bridge: short record")
	// ErrCorrupt: the record's CRC does not match, or its length is over MaxPayload.
	ErrCorrupt = errors.New("bridge: corrupt record")
	// ErrTooLarge: the payload is over MaxPayload.
	ErrTooLarge = errors.New("bridge: record too large")
	// ErrClosed: the spool is closed.
	ErrClosed = errors.New("bridge: spool closed")
	// ErrNotImplemented is what the stubs return until you write them.
	ErrNotImplemented = errors.New("bridge: not implemented")
)
