//go:build floodgate.solution

package auth

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// maxLine bounds one line of a password or ACL file.
const maxLine = 4096

// ParsePasswords reads a password file: one `username:hash` per line, where
// hash is a bcrypt hash ($2a$, $2b$ or $2y$, cost MinCost..MaxCost) as made
// by `mosquitto_passwd`-style tools or bcrypt.GenerateFromPassword. Blank
// lines and lines starting with '#' are ignored; surrounding spaces are
// trimmed. Every error wraps ErrMalformed and names the line; the hash itself
// is never echoed in an error.
func ParsePasswords(r io.Reader) (*Passwords, error) {
	hashes := make(map[string][]byte)
	firstLine := make(map[string]int) // username -> line that defined it
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("auth: password file line %d: %w: want username:hash, found no ':'", n, ErrMalformed)
		}
		if user == "" || strings.ContainsAny(user, " \t") {
			return nil, fmt.Errorf("auth: password file line %d: %w: username is empty or holds a space", n, ErrMalformed)
		}
		if err := checkHash(hash); err != nil {
			return nil, fmt.Errorf("auth: password file line %d: %w: user %q: %w", n, ErrMalformed, user, err)
		}
		if prev, dup := firstLine[user]; dup {
			return nil, fmt.Errorf("auth: password file line %d: %w: user %q already defined on line %d", n, ErrMalformed, user, prev)
		}
		firstLine[user] = n
		hashes[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: password file line %d: %w: %w", n+1, ErrMalformed, err)
	}
	return newPasswords(hashes)
}

// checkHash reports why hash is not a usable bcrypt hash.
func checkHash(hash string) error {
	if len(hash) != 60 || !strings.HasPrefix(hash, "$2") {
		return errors.New("not a bcrypt hash (want 60 characters starting $2a$, $2b$ or $2y$)")
	}
	cost, err := bcrypt.Cost([]byte(hash))
	if err != nil {
		return err
	}
	if cost > MaxCost {
		return fmt.Errorf("bcrypt cost %d is above the maximum %d", cost, MaxCost)
	}
	return nil
}

// Authenticate checks a username and password. It returns nil on success,
// ErrNotAuthorized when username is empty (an anonymous client, which a
// password file does not admit), and ErrBadCredentials for an unknown user or
// a wrong password: the same error value, after the same bcrypt work, so that
// neither the answer nor its timing reveals which usernames exist.
func (p *Passwords) Authenticate(username string, password []byte) error {
	if username == "" {
		return ErrNotAuthorized
	}
	hash, known := p.hashes[username]
	if !known {
		hash = p.dummy
	}
	// Always pay for one comparison. Any error (mismatch, password over 72
	// bytes) is a failed login; the detail is not the client's business.
	err := p.compare(hash, password)
	if err != nil || !known {
		return ErrBadCredentials
	}
	return nil
}

// ParseACL reads an ACL file: one rule per line, `read PATTERN`,
// `write PATTERN` or `readwrite PATTERN`. PATTERN is an MQTT topic filter in
// which %c stands for the client identifier and %u for the username. Blank
// lines and lines starting with '#' are ignored. Every error wraps
// ErrMalformed and names the line.
func ParseACL(r io.Reader) (*ACL, error) {
	var acl ACL
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("auth: acl line %d: %w: want `read|write|readwrite PATTERN`, got %d fields", n, ErrMalformed, len(fields))
		}
		var access Access
		switch fields[0] {
		case "read":
			access = Read
		case "write":
			access = Write
		case "readwrite":
			access = ReadWrite
		default:
			return nil, fmt.Errorf("auth: acl line %d: %w: unknown access %q", n, ErrMalformed, fields[0])
		}
		if err := checkFilter(fields[1]); err != nil {
			return nil, fmt.Errorf("auth: acl line %d: %w: pattern %q: %w", n, ErrMalformed, fields[1], err)
		}
		acl.Rules = append(acl.Rules, Rule{Access: access, Pattern: fields[1], Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: acl line %d: %w: %w", n+1, ErrMalformed, err)
	}
	return &acl, nil
}

// checkFilter validates a topic filter: '#' only as the whole last level,
// '+' only as a whole level [MQTT-4.7.1-2] [MQTT-4.7.1-3].
func checkFilter(f string) error {
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return errors.New("'#' must be the whole last level")
		}
		if strings.Contains(l, "+") && l != "+" {
			return errors.New("'+' must be a whole level")
		}
	}
	return nil
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
	if want == 0 || want&^ReadWrite != 0 {
		return false
	}
	for _, r := range a.Rules {
		if r.Access&want != want {
			continue
		}
		pattern, ok := substitute(r.Pattern, clientID, username)
		if ok && covers(pattern, topic) {
			return true
		}
	}
	return false
}

// substitute replaces %c and %u in pattern, refusing unsafe values. It
// replaces both in one pass, so a client id of "%u" stays literal instead of
// becoming the username.
func substitute(pattern, clientID, username string) (string, bool) {
	for _, sub := range []struct{ key, value string }{{"%c", clientID}, {"%u", username}} {
		if strings.Contains(pattern, sub.key) && (sub.value == "" || sub.value[0] == '$' || strings.ContainsAny(sub.value, "+#/")) {
			return "", false
		}
	}
	return strings.NewReplacer("%c", clientID, "%u", username).Replace(pattern), true
}

// covers reports whether every topic that filter matches is also matched by
// pattern. When filter holds no wildcard, that is plain MQTT matching of a
// topic name against pattern.
func covers(pattern, filter string) bool {
	p := strings.Split(pattern, "/")
	f := strings.Split(filter, "/")
	// Wildcards at the first level never match topics starting with '$'
	// [MQTT-4.7.2-1].
	if strings.HasPrefix(f[0], "$") && (p[0] == "+" || p[0] == "#") {
		return false
	}
	for i, pl := range p {
		if pl == "#" {
			return true // also covers the parent level: "a/#" matches "a"
		}
		if i >= len(f) || f[i] == "#" {
			return false
		}
		if pl != "+" && pl != f[i] {
			return false // a literal covers only the same literal, not '+'
		}
	}
	return len(p) == len(f)
}

// ServerTLS builds a *tls.Config for a TLS listener (use it with tls.Listen
// or tls.NewListener) from the files named in opts. It returns
// ErrNoCertificate when CertFile or KeyFile is empty, and an error naming the
// file when a file cannot be read or parsed. With ClientCAFile set, the
// config requires and verifies client certificates against those CAs.
func ServerTLS(opts TLSOptions) (*tls.Config, error) {
	if opts.CertFile == "" || opts.KeyFile == "" {
		return nil, ErrNoCertificate
	}
	cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("auth: load key pair %s, %s: %w", opts.CertFile, opts.KeyFile, err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
	if opts.ClientCAFile != "" {
		pemData, err := os.ReadFile(opts.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("auth: read client CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("auth: client CA file %s: %w: no PEM certificate found", opts.ClientCAFile, ErrMalformed)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ConnackCode maps the result of an authentication or authorisation check
// to the CONNACK code for the client's protocol level (ProtocolLevel311 or
// ProtocolLevel5): nil is accepted, ErrBadCredentials is "bad user name or
// password", ErrNotAuthorized is "not authorized", and any other error is
// "server unavailable", which tells the client to retry rather than to give
// up on its credentials. A broker sends this code and nothing more.
func ConnackCode(err error, protocolLevel byte) byte {
	v5 := protocolLevel >= ProtocolLevel5
	switch {
	case err == nil:
		return ConnackAccepted
	case errors.Is(err, ErrBadCredentials):
		if v5 {
			return Connack5BadUsernameOrPass
		}
		return Connack311BadUsernameOrPass
	case errors.Is(err, ErrNotAuthorized):
		if v5 {
			return Connack5NotAuthorized
		}
		return Connack311NotAuthorized
	default:
		if v5 {
			return Connack5ServerUnavailable
		}
		return Connack311ServerUnavailable
	}
}
