package mqtt

import (
	"errors"
	"fmt"
)

// ReasonCode is an MQTT 5.0 reason code: the result of an operation, sent in
// CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT and
// AUTH. Values below 0x80 report success; 0x80 and above report failure.
type ReasonCode byte

// The MQTT 5.0 reason codes (section 2.4, Table 2-6). Several codes share a
// value; the name says which packet uses it.
const (
	Success                             ReasonCode = 0x00
	NormalDisconnection                 ReasonCode = 0x00
	GrantedQoS0                         ReasonCode = 0x00
	GrantedQoS1                         ReasonCode = 0x01
	GrantedQoS2                         ReasonCode = 0x02
	DisconnectWithWillMessage           ReasonCode = 0x04
	NoMatchingSubscribers               ReasonCode = 0x10
	NoSubscriptionExisted               ReasonCode = 0x11
	ContinueAuthentication              ReasonCode = 0x18
	ReAuthenticate                      ReasonCode = 0x19
	UnspecifiedError                    ReasonCode = 0x80
	MalformedPacket                     ReasonCode = 0x81
	ProtocolError                       ReasonCode = 0x82
	ImplementationSpecificError         ReasonCode = 0x83
	UnsupportedProtocolVersion          ReasonCode = 0x84
	ClientIdentifierNotValid            ReasonCode = 0x85
	BadUserNameOrPassword               ReasonCode = 0x86
	NotAuthorized                       ReasonCode = 0x87
	ServerUnavailable                   ReasonCode = 0x88
	ServerBusy                          ReasonCode = 0x89
	Banned                              ReasonCode = 0x8A
	ServerShuttingDown                  ReasonCode = 0x8B
	BadAuthenticationMethod             ReasonCode = 0x8C
	KeepAliveTimeout                    ReasonCode = 0x8D
	SessionTakenOver                    ReasonCode = 0x8E
	TopicFilterInvalid                  ReasonCode = 0x8F
	TopicNameInvalid                    ReasonCode = 0x90
	PacketIdentifierInUse               ReasonCode = 0x91
	PacketIdentifierNotFound            ReasonCode = 0x92
	ReceiveMaximumExceeded              ReasonCode = 0x93
	TopicAliasInvalid                   ReasonCode = 0x94
	PacketTooLarge                      ReasonCode = 0x95
	MessageRateTooHigh                  ReasonCode = 0x96
	QuotaExceeded                       ReasonCode = 0x97
	AdministrativeAction                ReasonCode = 0x98
	PayloadFormatInvalid                ReasonCode = 0x99
	RetainNotSupported                  ReasonCode = 0x9A
	QoSNotSupported                     ReasonCode = 0x9B
	UseAnotherServer                    ReasonCode = 0x9C
	ServerMoved                         ReasonCode = 0x9D
	SharedSubscriptionsNotSupported     ReasonCode = 0x9E
	ConnectionRateExceeded              ReasonCode = 0x9F
	MaximumConnectTime                  ReasonCode = 0xA0
	SubscriptionIdentifiersNotSupported ReasonCode = 0xA1
	WildcardSubscriptionsNotSupported   ReasonCode = 0xA2
)

var reasonNames = map[ReasonCode]string{
	0x00: "Success", 0x01: "Granted QoS 1", 0x02: "Granted QoS 2",
	0x04: "Disconnect with Will Message", 0x10: "No matching subscribers",
	0x11: "No subscription existed", 0x18: "Continue authentication",
	0x19: "Re-authenticate", 0x80: "Unspecified error", 0x81: "Malformed Packet",
	0x82: "Protocol Error", 0x83: "Implementation specific error",
	0x84: "Unsupported Protocol Version", 0x85: "Client Identifier not valid",
	0x86: "Bad User Name or Password", 0x87: "Not authorized",
	0x88: "Server unavailable", 0x89: "Server busy", 0x8A: "Banned",
	0x8B: "Server shutting down", 0x8C: "Bad authentication method",
	0x8D: "Keep Alive timeout", 0x8E: "Session taken over",
	0x8F: "Topic Filter invalid", 0x90: "Topic Name invalid",
	0x91: "Packet Identifier in use", 0x92: "Packet Identifier not found",
	0x93: "Receive Maximum exceeded", 0x94: "Topic Alias invalid",
	0x95: "Packet too large", 0x96: "Message rate too high", 0x97: "Quota exceeded",
	0x98: "Administrative action", 0x99: "Payload format invalid",
	0x9A: "Retain not supported", 0x9B: "QoS not supported",
	0x9C: "Use another server", 0x9D: "Server moved",
	0x9E: "Shared Subscriptions not supported", 0x9F: "Connection rate exceeded",
	0xA0: "Maximum connect time", 0xA1: "Subscription Identifiers not supported",
	0xA2: "Wildcard Subscriptions not supported",
}

// String returns the reason code's name from the specification, or
// "reason code 0xNN" for a value it does not define.
func (c ReasonCode) String() string {
	if s, ok := reasonNames[c]; ok {
		return s
	}
	return fmt.Sprintf("reason code 0x%02X", byte(c))
}

// IsError reports whether c reports a failure (0x80 or above).
func (c ReasonCode) IsError() bool { return c >= 0x80 }

// Error is a codec error that maps to an MQTT 5.0 reason code. The package's
// Err values are *Error; errors returned by the codec wrap one of them with
// the operation and the rule broken, so test with errors.Is and recover the
// code with [CodeOf].
type Error struct {
	Code ReasonCode
	Msg  string
}

func (e *Error) Error() string { return "mqtt: " + e.Msg }

// The codec's errors. Each maps to the reason code a server sends (in CONNACK
// before a session exists, in DISCONNECT after) before it closes the
// connection; a 3.1.1 server just closes it.
var (
	// ErrMalformed: the bytes do not follow the encoding rules (0x81).
	ErrMalformed = &Error{MalformedPacket, "malformed packet"}
	// ErrProtocol: the bytes parse but break a protocol rule (0x82).
	ErrProtocol = &Error{ProtocolError, "protocol error"}
	// ErrPacketTooLarge: the packet exceeds the reader's MaxPacketSize, or
	// a field exceeds what its length prefix can express (0x95).
	ErrPacketTooLarge = &Error{PacketTooLarge, "packet too large"}
	// ErrUnsupportedVersion: CONNECT names a protocol level other than 4 or
	// 5 (0x84) [MQTT-3.1.2-2].
	ErrUnsupportedVersion = &Error{UnsupportedProtocolVersion, "unsupported protocol version"}
	// ErrTopicNameInvalid: a PUBLISH topic name holds a wildcard (0x90).
	ErrTopicNameInvalid = &Error{TopicNameInvalid, "topic name invalid"}
	// ErrTopicAliasInvalid: a Topic Alias of 0 (0x94) [MQTT-3.3.2-8].
	ErrTopicAliasInvalid = &Error{TopicAliasInvalid, "topic alias invalid"}
)

// CodeOf returns the reason code of the first *Error in err's chain, or
// UnspecifiedError (0x80) if there is none (an I/O error, for example).
// CodeOf(nil) is Success.
func CodeOf(err error) ReasonCode {
	if err == nil {
		return Success
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return UnspecifiedError
}

// malformed wraps ErrMalformed with the operation and the rule broken.
func malformed(op, rule string) error { return fmt.Errorf("%s: %w: %s", op, ErrMalformed, rule) }

// protocolErr wraps ErrProtocol with the operation and the rule broken.
func protocolErr(op, rule string) error { return fmt.Errorf("%s: %w: %s", op, ErrProtocol, rule) }

// ReturnCodeV311 maps a reason code to the CONNACK return code of MQTT 3.1.1
// (section 3.2.2.3): 0 accepted, 1 unacceptable protocol version, 2
// identifier rejected, 3 server unavailable, 4 bad user name or password, 5
// not authorized. Codes 3.1.1 cannot express become 3 (server unavailable).
func ReturnCodeV311(c ReasonCode) byte {
	switch c {
	case Success:
		return 0
	case UnsupportedProtocolVersion:
		return 1
	case ClientIdentifierNotValid:
		return 2
	case BadUserNameOrPassword:
		return 4
	case NotAuthorized, Banned:
		return 5
	}
	return 3
}

// reasonFromV311 is the inverse of ReturnCodeV311; ok is false for values
// above 5, which 3.1.1 reserves.
func reasonFromV311(rc byte) (c ReasonCode, ok bool) {
	switch rc {
	case 0:
		return Success, true
	case 1:
		return UnsupportedProtocolVersion, true
	case 2:
		return ClientIdentifierNotValid, true
	case 3:
		return ServerUnavailable, true
	case 4:
		return BadUserNameOrPassword, true
	case 5:
		return NotAuthorized, true
	}
	return 0, false
}
