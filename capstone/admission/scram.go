package admission

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/xdg-go/scram"
)

// SCRAM-SHA-256 (RFC 7677, on RFC 5802's SCRAM) as an MQTT 5.0
// Authentication Method: the client proves it knows the password without
// sending it, and the broker keeps no password either, only per-user keys
// derived from it. The conversation itself is github.com/xdg-go/scram's;
// the MQTT exchange that carries it (CONNECT, AUTH, CONNACK) is the
// session's (floodgate/capstone/session, auth.go).
//
// The users file has one line per user, in PostgreSQL's format for a SCRAM
// verifier (so a verifier can be copied from pg_authid):
//
//	user:SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
//
// salt, StoredKey and ServerKey in standard base64. Blank lines and lines
// starting with # are ignored; a user name has no ':'. HashSCRAM (the
// `floodgate -scram-hash USER` command) makes a line.

// MethodSCRAMSHA256 is the Authentication Method name a client puts in its
// CONNECT to use SCRAM-SHA-256 (its SASL mechanism name).
const MethodSCRAMSHA256 = "SCRAM-SHA-256"

// The refusal reasons of extended authentication, as counted by Counts.
const (
	ReasonBadAuthMethod = "bad_auth_method" // an Authentication Method not supported: 0x8C
	ReasonAuthFailed    = "auth_failed"     // a failed SCRAM exchange: 0x87
	ReasonAuthRequired  = "auth_required"   // no method, and no password file to fall back on: 0x87
	// ReasonReauthFailed counts a failed re-authentication: a connection
	// admitted before is closed (DISCONNECT 0x87), not one refused.
	ReasonReauthFailed = "reauth_failed"
)

// MinSCRAMIterations is the fewest PBKDF2 iterations a verifier may have
// (RFC 7677 section 4: at least 4096).
const MinSCRAMIterations = 4096

// ErrBadSCRAMUsers is wrapped by ParseSCRAMUsers for a malformed file.
var ErrBadSCRAMUsers = errors.New("admission: bad SCRAM users file")

// SCRAMUsers holds the SCRAM-SHA-256 verifiers of a users file. It is
// read-only after ParseSCRAMUsers, so safe for concurrent use.
type SCRAMUsers struct {
	users map[string]scram.StoredCredentials
	// decoy keys the stand-in verifier of a user not in the file, so that
	// an unknown user's exchange looks like a known one's and fails only
	// at the proof (RFC 5802 section 9: no user enumeration). It is
	// derived from the file's secret keys, not drawn at random: a random
	// key would give an unknown user a new salt at every restart while a
	// known user keeps hers, and that difference would name the users.
	decoy []byte
	// decoyIters and decoySalt are the iteration count and salt length
	// most of the file's users have (4096 and 16 for an empty file): a
	// decoy with other factors than the users' would stand out.
	decoyIters, decoySalt int
}

// ParseSCRAMUsers reads a users file. An error names the line.
func ParseSCRAMUsers(r io.Reader) (*SCRAMUsers, error) {
	u := &SCRAMUsers{users: make(map[string]scram.StoredCredentials)}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, cred, err := parseSCRAMLine(line)
		if err != nil {
			return nil, fmt.Errorf("parse SCRAM users: line %d: %w: %w", n, ErrBadSCRAMUsers, err)
		}
		if _, dup := u.users[user]; dup {
			return nil, fmt.Errorf("parse SCRAM users: line %d: %w: user %q twice", n, ErrBadSCRAMUsers, user)
		}
		u.users[user] = cred
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse SCRAM users: %w", err)
	}
	u.setDecoy()
	return u, nil
}

// setDecoy derives the decoy key from every user's name and keys, in name
// order (the same file gives the same decoys across restarts; a changed
// file changes them all, at a time an outsider cannot tell), and picks the
// decoy's factors: those most users have.
func (u *SCRAMUsers) setDecoy() {
	names := make([]string, 0, len(u.users))
	type factors struct{ iters, salt int }
	seen := make(map[factors]int)
	best := factors{MinSCRAMIterations, 16}
	for name, c := range u.users {
		names = append(names, name)
		f := factors{c.Iters, len(c.Salt)}
		seen[f]++
		if n := seen[f]; n > seen[best] || n == seen[best] && (f.iters > best.iters || f.iters == best.iters && f.salt > best.salt) {
			best = f
		}
	}
	slices.Sort(names)
	h := sha256.New()
	h.Write([]byte("floodgate SCRAM decoy\x00"))
	for _, name := range names {
		c := u.users[name]
		for _, part := range [][]byte{[]byte(name), []byte(c.Salt), c.StoredKey, c.ServerKey} {
			h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(part))))
			h.Write(part)
		}
	}
	u.decoy, u.decoyIters, u.decoySalt = h.Sum(nil), best.iters, best.salt
}

func parseSCRAMLine(line string) (string, scram.StoredCredentials, error) {
	var cred scram.StoredCredentials
	user, v, ok := strings.Cut(line, ":")
	if !ok || user == "" {
		return "", cred, errors.New("want user:SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>")
	}
	rest, ok := strings.CutPrefix(v, MethodSCRAMSHA256+"$")
	if !ok {
		return "", cred, fmt.Errorf("user %q: the verifier does not start with %s$", user, MethodSCRAMSHA256)
	}
	kf, keys, ok1 := strings.Cut(rest, "$")
	iters, salt64, ok2 := strings.Cut(kf, ":")
	stored64, server64, ok3 := strings.Cut(keys, ":")
	if !ok1 || !ok2 || !ok3 {
		return "", cred, fmt.Errorf("user %q: want SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>", user)
	}
	n, err := strconv.Atoi(iters)
	if err != nil || n < MinSCRAMIterations {
		return "", cred, fmt.Errorf("user %q: iterations %q: want a number of at least %d", user, iters, MinSCRAMIterations)
	}
	salt, err1 := base64.StdEncoding.DecodeString(salt64)
	stored, err2 := base64.StdEncoding.DecodeString(stored64)
	server, err3 := base64.StdEncoding.DecodeString(server64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return "", cred, fmt.Errorf("user %q: base64: %w", user, err)
	}
	if len(salt) == 0 || len(stored) != sha256.Size || len(server) != sha256.Size {
		return "", cred, fmt.Errorf("user %q: want a salt and two %d-byte keys", user, sha256.Size)
	}
	cred.KeyFactors = scram.KeyFactors{Salt: string(salt), Iters: n}
	cred.StoredKey, cred.ServerKey = stored, server
	return user, cred, nil
}

// HashSCRAM returns the users-file line for user with password: a random
// 16-byte salt and iterations PBKDF2 rounds (0: MinSCRAMIterations). The
// password is SASLprep'd, as a SCRAM client does.
func HashSCRAM(user, password string, iterations int) (string, error) {
	if iterations == 0 {
		iterations = MinSCRAMIterations
	}
	if user == "" || strings.Contains(user, ":") {
		return "", fmt.Errorf("hash SCRAM: user name %q: want a non-empty name without ':'", user)
	}
	if iterations < MinSCRAMIterations {
		return "", fmt.Errorf("hash SCRAM: %d iterations: want at least %d", iterations, MinSCRAMIterations)
	}
	client, err := scram.SHA256.NewClient(user, password, "")
	if err != nil {
		return "", fmt.Errorf("hash SCRAM: %w", err)
	}
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	cred, err := client.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: iterations})
	if err != nil {
		return "", fmt.Errorf("hash SCRAM: %w", err)
	}
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("%s:%s$%d:%s$%s:%s", user, MethodSCRAMSHA256, iterations, b64(salt),
		b64(cred.StoredKey), b64(cred.ServerKey)), nil
}

// lookup returns user's verifier, or for a user not in the file a decoy
// keyed by the file's secrets (setDecoy): the users' factors, a salt that
// stays the same for that name across restarts, and keys no password
// matches.
func (u *SCRAMUsers) lookup(user string) (scram.StoredCredentials, error) {
	if c, ok := u.users[user]; ok {
		return c, nil
	}
	mac := func(label string) []byte {
		h := hmac.New(sha256.New, u.decoy)
		h.Write([]byte(label + "\x00" + user))
		return h.Sum(nil)
	}
	salt := mac("salt")
	for len(salt) < u.decoySalt {
		salt = append(salt, mac("salt"+strconv.Itoa(len(salt)))...)
	}
	return scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(salt[:u.decoySalt]), Iters: u.decoyIters},
		StoredKey: mac("stored"), ServerKey: mac("server")}, nil
}

// Exchange is one extended-authentication conversation, the server's side:
// a connection's first, or a re-authentication. It is not safe for
// concurrent use (one connection's reader drives it).
type Exchange struct {
	a      *Admitter
	conv   *scram.ServerConversation
	failed string // the reason a failure counts: ReasonAuthFailed or ReasonReauthFailed
}

// StartAuth begins an exchange for the Authentication Method a client
// named. It returns nil and 0x8C Bad authentication method (counted
// ReasonBadAuthMethod) for a method the Admitter does not support: any but
// MethodSCRAMSHA256, and that one too without SCRAM users.
func (a *Admitter) StartAuth(method string) (*Exchange, mqtt.ReasonCode) {
	if method != MethodSCRAMSHA256 || a.cfg.SCRAM == nil {
		a.count(ReasonBadAuthMethod)
		return nil, mqtt.BadAuthenticationMethod
	}
	return a.start(ReasonAuthFailed)
}

// StartReauth begins a re-authentication (AUTH 0x19) on a connection that
// authenticated with method: as StartAuth, but its failures count
// ReasonReauthFailed, since they close a connection admitted before.
func (a *Admitter) StartReauth(method string) (*Exchange, mqtt.ReasonCode) {
	if method != MethodSCRAMSHA256 || a.cfg.SCRAM == nil {
		a.count(ReasonReauthFailed)
		return nil, mqtt.BadAuthenticationMethod
	}
	return a.start(ReasonReauthFailed)
}

func (a *Admitter) start(failed string) (*Exchange, mqtt.ReasonCode) {
	srv, err := scram.SHA256.NewServer(a.cfg.SCRAM.lookup)
	if err != nil {
		a.count(failed)
		return nil, mqtt.NotAuthorized
	}
	return &Exchange{a: a, conv: srv.NewConversation(), failed: failed}, mqtt.Success
}

// Step takes the client's Authentication Data and returns the server's
// next: after the client-first message (in CONNECT, or in AUTH 0x19) the
// server-first message, with done false; after the client-final message
// (AUTH 0x18) the server-final message, with done true. An error (counted
// ReasonAuthFailed, or ReasonReauthFailed) means the exchange failed: a malformed message, a wrong
// proof, an unknown user, or a step too many; the client is not
// authenticated (0x87 Not authorized).
func (e *Exchange) Step(data []byte) (reply []byte, done bool, err error) {
	out, err := e.conv.Step(string(data))
	if err != nil {
		e.a.count(e.failed)
		return nil, true, fmt.Errorf("SCRAM exchange: %w", err)
	}
	if !e.conv.Done() {
		if z := e.conv.AuthzID(); z != "" && z != e.conv.Username() {
			// Acting for another user (RFC 5802's authzid) is not
			// supported: a client is who it proves to be.
			e.a.count(e.failed)
			return nil, true, fmt.Errorf("SCRAM exchange: authorization identity %q is not the user", z)
		}
		return []byte(out), false, nil
	}
	if !e.conv.Valid() {
		e.a.count(e.failed)
		return nil, true, errors.New("SCRAM exchange: not valid")
	}
	return []byte(out), true, nil
}

// User is the user name the client authenticates as (known after the
// first Step).
func (e *Exchange) User() string { return e.conv.Username() }

// Confirm reports whether the exchange's user is name (the CONNECT's User
// Name, or the user a re-authenticating connection proved before). A
// mismatch fails the exchange, counted as any failure is.
func (e *Exchange) Confirm(name string) bool {
	if e.conv.Username() == name {
		return true
	}
	e.a.count(e.failed)
	return false
}
