//go:build !floodgate.solution

package auth

import (
	"crypto/tls"
	"errors"
	"io"
)

// errTODO is what the unfinished functions return.
var errTODO = errors.New("auth: not implemented yet")

// ParsePasswords reads a password file: one `username:hash` per line, where
// hash is a bcrypt hash ($2a$, $2b$ or $2y$, cost MinCost..MaxCost). Blank
// lines and lines starting with '#' are ignored; surrounding spaces are
// trimmed. Every error wraps ErrMalformed and names the line; the hash itself
// is never echoed in an error.
func ParsePasswords(r io.Reader) (*Passwords, error) {
	// TODO(Task 1): scan r line by line (bufio.Scanner), skip blanks and
	// comments, split each line at the first ':', check the username and the
	// hash (bcrypt.Cost, length 60, cost at most MaxCost), refuse duplicate
	// users, and finish with newPasswords(hashes).
	return nil, errTODO
}

// Authenticate checks a username and password. It returns nil on success,
// ErrNotAuthorized when username is empty (an anonymous client, which a
// password file does not admit), and ErrBadCredentials for an unknown user or
// a wrong password: the same error value, after the same bcrypt work, so that
// neither the answer nor its timing reveals which usernames exist.
func (p *Passwords) Authenticate(username string, password []byte) error {
	// TODO(Task 2): look the user up in p.hashes; for an unknown user use
	// p.dummy instead, and in every case call p.compare exactly once.
	return errTODO
}

// ParseACL reads an ACL file: one rule per line, `read PATTERN`,
// `write PATTERN` or `readwrite PATTERN`. PATTERN is an MQTT topic filter in
// which %c stands for the client identifier and %u for the username. Blank
// lines and lines starting with '#' are ignored. Every error wraps
// ErrMalformed and names the line.
func ParseACL(r io.Reader) (*ACL, error) {
	// TODO(Task 3): parse each rule into a Rule; check the access keyword and
	// that '#' and '+' are whole levels, '#' only last.
	return nil, errTODO
}

// Allow reports whether the client may have access want to topic. For Write,
// topic is the topic name of a PUBLISH. For Read, topic is a subscription
// filter (a topic name is a filter that matches only itself), and it is
// allowed when one rule's pattern covers every topic the filter can match.
//
// %c and %u are replaced by clientID and username. A rule that uses one of
// them does not apply when the value is empty, holds '+', '#' or '/', or
// starts with '$': otherwise a client named "#" would be granted everything,
// and one named "$SYS" would turn a rule like `readwrite %c/#` into one on
// the broker's own topics.
func (a *ACL) Allow(clientID, username, topic string, want Access) bool {
	// TODO(Task 3): for each rule granting want, substitute %c and %u
	// (refusing unsafe values) and check that the pattern covers topic,
	// remembering that wildcards at the first level skip '$' topics.
	return false
}

// ServerTLS builds a *tls.Config for a TLS listener (use it with tls.Listen
// or tls.NewListener) from the files named in opts. It returns
// ErrNoCertificate when CertFile or KeyFile is empty, and an error naming the
// file when a file cannot be read or parsed. With ClientCAFile set, the
// config requires and verifies client certificates against those CAs.
func ServerTLS(opts TLSOptions) (*tls.Config, error) {
	// TODO(Task 4): tls.LoadX509KeyPair, MinVersion TLS 1.2, and for
	// ClientCAFile an x509.CertPool with tls.RequireAndVerifyClientCert.
	return nil, errTODO
}

// ConnackCode maps the result of an authentication or authorisation check
// to the CONNACK code for the client's protocol level (ProtocolLevel311 or
// ProtocolLevel5): nil is accepted, ErrBadCredentials is "bad user name or
// password", ErrNotAuthorized is "not authorized", and any other error is
// "server unavailable", which tells the client to retry rather than to give
// up on its credentials. A broker sends this code and nothing more.
func ConnackCode(err error, protocolLevel byte) byte {
	// TODO(Task 5): use errors.Is, and the Connack... constants in doc.go.
	return ConnackAccepted
}
