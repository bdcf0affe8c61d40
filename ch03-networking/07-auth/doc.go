// Package auth decides who may connect to an MQTT broker and what they may
// touch: bcrypt password checks that take the same time whether or not the
// username exists, topic access rules with client-id and username
// substitution, a TLS server configuration, and the CONNACK code a refused
// client is told, and nothing more.
//
// Nothing in this package changes a value once it is built, so a *Passwords
// or an *ACL is safe for concurrent use by any number of connection
// goroutines (as long as the caller does not modify ACL.Rules meanwhile).
package auth

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// Errors returned by this package. Authentication and authorisation errors
// are deliberately few and say nothing about which part was wrong: a client
// must not learn whether a username exists.
var (
	// ErrBadCredentials means the username is unknown or the password is
	// wrong. The two cases are the same error on purpose.
	ErrBadCredentials = errors.New("auth: bad username or password")
	// ErrNotAuthorized means the client is known (or anonymous) but is not
	// allowed to do what it asked, for example to connect without a username.
	ErrNotAuthorized = errors.New("auth: not authorized")
	// ErrMalformed is wrapped by every parse error of a password or ACL file;
	// the wrapping message names the line.
	ErrMalformed = errors.New("malformed")
	// ErrNoCertificate means a TLS configuration was asked for without a
	// certificate and key.
	ErrNoCertificate = errors.New("auth: no TLS certificate configured")
)

// MaxCost is the highest bcrypt cost a password file may use. Each unit of
// cost doubles the work of one check, and a broker runs one check per CONNECT:
// past this a reconnect storm of a few thousand devices becomes a denial of
// service the broker inflicts on itself.
const MaxCost = 14

// Passwords maps usernames to bcrypt hashes. Build it with ParsePasswords.
// It is immutable after construction and safe for concurrent use.
type Passwords struct {
	hashes map[string][]byte // username -> bcrypt hash; read-only after construction
	// dummy is a valid bcrypt hash of a random password, at the highest cost
	// found in hashes. Authenticate compares against it when the username is
	// unknown, so that an unknown user costs as much as a known one.
	dummy []byte
	// compare is bcrypt.CompareHashAndPassword; tests replace it to count
	// comparisons.
	compare func(hash, password []byte) error
}

// newPasswords builds a Passwords from hashes that have already been
// validated, and makes the dummy hash at the highest cost in use (the
// bcrypt default when hashes is empty).
func newPasswords(hashes map[string][]byte) (*Passwords, error) {
	cost := bcrypt.DefaultCost
	if len(hashes) > 0 {
		cost = bcrypt.MinCost
	}
	for _, h := range hashes {
		if c, err := bcrypt.Cost(h); err == nil && c > cost {
			cost = c
		}
	}
	// The dummy's password is a fixed string. It grants nothing: Authenticate
	// consults the dummy only for names that are not in hashes, and then
	// fails whatever the result.
	dummy, err := bcrypt.GenerateFromPassword([]byte("floodgate-dummy-password-for-unknown-users"), cost)
	if err != nil {
		return nil, fmt.Errorf("auth: make dummy hash: %w", err)
	}
	return &Passwords{hashes: hashes, dummy: dummy, compare: bcrypt.CompareHashAndPassword}, nil
}

// Len reports how many users the file defines.
func (p *Passwords) Len() int { return len(p.hashes) }

// Access is what a client may do with a topic.
type Access uint8

// The kinds of access. ReadWrite is Read|Write.
const (
	Read      Access = 1 << iota // subscribe, and receive messages
	Write                        // publish
	ReadWrite = Read | Write
)

// String returns the keyword an ACL file uses for a.
func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	case ReadWrite:
		return "readwrite"
	}
	return fmt.Sprintf("Access(%d)", uint8(a))
}

// Rule is one line of an ACL file: the access it grants and the topic
// pattern it grants it on. The pattern is an MQTT topic filter that may hold
// %c (the client identifier) and %u (the username).
type Rule struct {
	Access  Access
	Pattern string
	Line    int // the line of the file it came from, for messages
}

// ACL is an ordered list of allow rules; anything no rule allows is denied.
// Build it with ParseACL. Allow only reads it, so concurrent calls are safe
// while nobody modifies Rules.
type ACL struct {
	Rules []Rule
}

// TLSOptions names the files of a TLS server configuration. CertFile and
// KeyFile are required. When ClientCAFile is set, clients must present a
// certificate signed by one of its CAs (mutual TLS); when it is empty, client
// certificates are not asked for. The minimum protocol version is TLS 1.2.
type TLSOptions struct {
	CertFile     string // PEM certificate chain of the server
	KeyFile      string // PEM private key of the server
	ClientCAFile string // PEM CA certificates that sign client certificates; optional
}

// CONNACK codes for refused connections. MQTT 3.1.1 calls the byte a
// "connect return code" (section 3.2.2.3); MQTT 5.0 calls it a "reason code"
// (section 3.2.2.2).
const (
	ConnackAccepted = 0x00

	Connack311ServerUnavailable      = 0x03
	Connack311BadUsernameOrPass      = 0x04
	Connack311NotAuthorized          = 0x05
	Connack5BadUsernameOrPass        = 0x86
	Connack5NotAuthorized            = 0x87
	Connack5ServerUnavailable        = 0x88
	ProtocolLevel311            byte = 4 // the protocol level byte of MQTT 3.1.1
	ProtocolLevel5              byte = 5 // the protocol level byte of MQTT 5.0
)
