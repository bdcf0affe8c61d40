// Package store persists what an MQTT broker must not forget across a
// restart: sessions with their subscriptions, retained messages, and QoS 1
// and 2 messages in flight in both directions.
//
// Store is the interface; Open returns the bbolt implementation (one file,
// one writer, fsync per committed transaction) and NewMemory an in-memory
// one for tests. The record types are plain structs: the store copies what
// it is given and what it returns, so callers may keep or change them.
package store

import (
	"errors"
	"time"
)

// Errors. They are returned wrapped with the operation.
var (
	// ErrNotFound is returned for a session that is not stored.
	ErrNotFound = errors.New("store: not found")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("store: closed")
	// ErrInvalid is returned for a record that cannot be stored (an empty
	// client identifier or topic, a packet identifier of 0).
	ErrInvalid = errors.New("store: invalid record")
	// ErrCorrupt is returned when a stored record cannot be decoded.
	ErrCorrupt = errors.New("store: corrupt record")
)

// Store persists broker state. Implementations are safe for concurrent use.
// A method that returns nil has made its change durable (for the bbolt
// store: committed and fsynced), unless the store was opened with NoSync.
type Store interface {
	// SaveSession creates or replaces the session s.ClientID, with its
	// subscriptions.
	SaveSession(s Session) error
	// LoadSession returns the session clientID, or an error wrapping
	// ErrNotFound.
	LoadSession(clientID string) (Session, error)
	// DeleteSession removes the session and every in-flight message of
	// clientID. Deleting a session that is not stored is not an error.
	DeleteSession(clientID string) error
	// Sessions returns every stored session, ordered by client identifier.
	Sessions() ([]Session, error)

	// SetRetained stores m as the retained message of m.Topic, replacing any
	// other; an empty payload deletes it [MQTT-3.3.1-10].
	SetRetained(m Message) error
	// Retained returns every retained message, ordered by topic.
	Retained() ([]Message, error)

	// PutInFlight creates or updates one in-flight message, keyed by
	// (ClientID, Direction, PacketID). An update keeps the message's place
	// in the order InFlight returns.
	PutInFlight(f InFlight) error
	// DeleteInFlight removes one in-flight message; removing one that is
	// not stored is not an error.
	DeleteInFlight(clientID string, dir Direction, packetID uint16) error
	// InFlight returns clientID's in-flight messages in the order they were
	// first put, so that they are resent in their original order
	// [MQTT-4.6.0-1].
	InFlight(clientID string) ([]InFlight, error)

	// Apply makes every change in cs, in order, in one transaction (for
	// the bbolt store: one commit, one fsync): all are kept or none is.
	// An invalid change fails the whole batch with ErrInvalid.
	Apply(cs []Change) error

	// Close releases the store. Later calls return ErrClosed.
	Close() error
}

// Session is one client's persistent session.
type Session struct {
	ClientID string
	// Clean is the Clean Session (3.1.1) or Clean Start (5.0) flag the
	// client connected with.
	Clean bool
	// ProtocolVersion is 4 for MQTT 3.1.1, 5 for MQTT 5.0.
	ProtocolVersion byte
	// ExpiryInterval is the MQTT 5 session expiry interval in seconds;
	// 0xFFFFFFFF never expires. For 3.1.1, a session that is not clean
	// never expires.
	ExpiryInterval uint32
	// DisconnectedAt is when the client last went away; zero while it is
	// connected. The session expires at DisconnectedAt + ExpiryInterval.
	DisconnectedAt time.Time
	Subscriptions  []Subscription
	// Will is the will message still to be sent (MQTT 5 will delay), or nil.
	Will *Will
}

// Expired reports whether the session has expired at now.
func (s Session) Expired(now time.Time) bool {
	if s.DisconnectedAt.IsZero() || s.ExpiryInterval == 0xFFFFFFFF {
		return false
	}
	if s.ProtocolVersion < 5 && !s.Clean {
		return false
	}
	return !now.Before(s.DisconnectedAt.Add(time.Duration(s.ExpiryInterval) * time.Second))
}

// Subscription is one topic filter with its options.
type Subscription struct {
	Filter string
	QoS    byte
	// MQTT 5 subscription options.
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte   // 0, 1 or 2
	Identifier        uint32 // subscription identifier; 0 for none
}

// Will is a will message and its MQTT 5 delay.
type Will struct {
	Message
	DelayInterval uint32 // seconds
}

// Message is an application message with its MQTT 5 properties.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool

	PayloadFormat   byte // 0 bytes, 1 UTF-8
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	UserProperties  []UserProperty
	// ExpiresAt is when the message expires (from the message expiry
	// interval); zero never expires.
	ExpiresAt time.Time
}

// UserProperty is one MQTT 5 user property.
type UserProperty struct{ Key, Value string }

// Direction says which way an in-flight message travels.
type Direction byte

const (
	// Outbound: from the broker to the client.
	Outbound Direction = 1
	// Inbound: from the client to the broker (QoS 2, PUBREC sent, waiting
	// for PUBREL).
	Inbound Direction = 2
)

// FlightState is where an in-flight message is in its QoS flow.
type FlightState byte

const (
	// AwaitingAck: outbound PUBLISH sent, waiting for PUBACK (QoS 1) or
	// PUBREC (QoS 2).
	AwaitingAck FlightState = 1
	// AwaitingComp: outbound QoS 2, PUBREL sent, waiting for PUBCOMP. The
	// message payload may be dropped: only the PUBREL is resent.
	AwaitingComp FlightState = 2
	// AwaitingRel: inbound QoS 2, PUBREC sent, waiting for PUBREL. Message
	// holds the publication until it is released.
	AwaitingRel FlightState = 3
	// Queued: outbound QoS 1 or 2 for a session whose client is away (or
	// whose receive maximum is reached), packet identifier assigned, never
	// sent: its first PUBLISH goes out with DUP 0. It keeps its place in
	// InFlight's order with the messages already sent.
	Queued FlightState = 4
)

// InFlight is one QoS 1 or 2 message in flight.
type InFlight struct {
	ClientID  string
	Direction Direction
	PacketID  uint16
	State     FlightState
	Message   Message
	// SentAt is when the packet was last sent (for retry policy).
	SentAt time.Time
}
