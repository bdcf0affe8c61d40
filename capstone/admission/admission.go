// Package admission decides who gets in and how fast they may talk: a cap on
// open connections, an accept-rate limiter (the token bucket of chapter 4's
// lab 4, floodgate/ch04-tuning/04-ratelimit), authentication and topic ACLs
// (chapter 3's lab 7, floodgate/ch03-networking/07-auth), and per-client
// publish-rate and byte-rate limits (chapter 4's GCRA: one int64 per limit
// per client, 16 bytes for both).
//
// Every refusal is counted by its reason (see Counts) and comes with the
// MQTT 5.0 reason code the session sends; the codec maps it to the 3.1.1
// CONNACK return code for an older client.
package admission

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	mqtt "floodgate/ch03-networking/03-mqtt"
	auth "floodgate/ch03-networking/07-auth"
	ratelimit "floodgate/ch04-tuning/04-ratelimit"
)

// The refusal reasons, as counted by Counts.
const (
	ReasonConnCap        = "connection_cap"
	ReasonAcceptRate     = "accept_rate"
	ReasonBadCredentials = "bad_credentials"
	ReasonNotAuthorized  = "not_authorized"
	ReasonPublishRate    = "publish_rate"
	ReasonByteRate       = "byte_rate"
	ReasonACLWrite       = "acl_write"
	ReasonACLRead        = "acl_read"
)

// ErrBadConfig is wrapped by New for an invalid Config.
var ErrBadConfig = errors.New("admission: bad config")

// Config sets the limits. Its zero value admits everyone, without limits.
type Config struct {
	// MaxConns caps open connections; 0 means no cap. A connection over the
	// cap is answered CONNACK 0x89 Server busy (3.1.1: 3 Server
	// unavailable) and closed.
	MaxConns int
	// AcceptRate limits new connections per second (token bucket of
	// AcceptBurst); 0 means no limit. A refused one gets CONNACK 0x9F
	// Connection rate exceeded (3.1.1: 3).
	AcceptRate  float64
	AcceptBurst int // default max(1, AcceptRate)

	// Passwords, if set, is required of every client (bcrypt password
	// file of chapter 3's lab 7). ACL, if set, restricts topics.
	Passwords *auth.Passwords
	ACL       *auth.ACL
	// SCRAM, if set, enables extended authentication (MQTT 5.0 section
	// 4.12) with the Authentication Method SCRAM-SHA-256 for its users
	// (see scram.go). Without Passwords it is then required of every
	// client: one that names no method is refused 0x87 Not authorized.
	SCRAM *SCRAMUsers

	// PublishRate limits each client's PUBLISH packets per second (GCRA
	// with bursts of PublishBurst); 0 means no limit.
	PublishRate  float64
	PublishBurst int // default max(1, PublishRate)
	// ByteRate limits each client's PUBLISH payload bytes per second (GCRA
	// with bursts of ByteBurst bytes); 0 means no limit.
	ByteRate  float64
	ByteBurst int // default max(1, ByteRate)

	// OnRefuse, if set, is called with the reason of each refusal, with no
	// lock held (the broker feeds its metrics with it).
	OnRefuse func(reason string)
}

// Admitter applies a Config. It is safe for concurrent use.
type Admitter struct {
	cfg    Config
	accept *ratelimit.Bucket // nil: no limit
	msgs   *ratelimit.GCRA   // nil: no limit
	bytes  *ratelimit.GCRA   // nil: no limit
	open   atomic.Int64

	mu     sync.Mutex // guards counts
	counts map[string]uint64
}

// New checks cfg and returns an Admitter.
func New(cfg Config) (*Admitter, error) {
	if cfg.MaxConns < 0 || cfg.AcceptRate < 0 || cfg.PublishRate < 0 || cfg.ByteRate < 0 {
		return nil, fmt.Errorf("new admitter: %w: negative limit", ErrBadConfig)
	}
	a := &Admitter{cfg: cfg, counts: make(map[string]uint64)}
	burst := func(b int, rate float64) int {
		if b > 0 {
			return b
		}
		return max(1, int(rate))
	}
	if cfg.AcceptRate > 0 {
		b, err := ratelimit.NewBucket(ratelimit.Limit(cfg.AcceptRate), burst(cfg.AcceptBurst, cfg.AcceptRate))
		if err != nil {
			return nil, fmt.Errorf("new admitter: accept rate: %w: %w", ErrBadConfig, err)
		}
		a.accept = b
	}
	if cfg.PublishRate > 0 {
		g, err := ratelimit.NewGCRA(ratelimit.Limit(cfg.PublishRate), burst(cfg.PublishBurst, cfg.PublishRate))
		if err != nil {
			return nil, fmt.Errorf("new admitter: publish rate: %w: %w", ErrBadConfig, err)
		}
		a.msgs = &g
	}
	if cfg.ByteRate > 0 {
		g, err := ratelimit.NewGCRA(ratelimit.Limit(cfg.ByteRate), burst(cfg.ByteBurst, cfg.ByteRate))
		if err != nil {
			return nil, fmt.Errorf("new admitter: byte rate: %w: %w", ErrBadConfig, err)
		}
		a.bytes = &g
	}
	return a, nil
}

func (a *Admitter) count(reason string) {
	a.mu.Lock()
	a.counts[reason]++
	a.mu.Unlock()
	if a.cfg.OnRefuse != nil {
		a.cfg.OnRefuse(reason)
	}
}

// Counts returns a copy of the refusal counters, by reason.
func (a *Admitter) Counts() map[string]uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]uint64, len(a.counts))
	for k, v := range a.counts {
		out[k] = v
	}
	return out
}

// Open returns how many admitted connections are open.
func (a *Admitter) Open() int64 { return a.open.Load() }

// Accept runs when a connection arrives, before a byte is read. It returns
// Success and a release function to call when the connection ends, or the
// refusal's reason code (release is then a no-op). The connection cap is
// checked first, then the accept rate. Release may be called more than
// once; only the first call counts. It allocates a closure per connection:
// a caller that holds many connections uses Admit and Release instead.
func (a *Admitter) Accept(now time.Time) (code mqtt.ReasonCode, release func()) {
	if code = a.Admit(now); code != mqtt.Success {
		return code, func() {}
	}
	var once sync.Once
	return mqtt.Success, func() { once.Do(a.Release) }
}

// Admit is Accept without the closure: it returns Success, after which the
// caller must call Release exactly once when the connection ends, or the
// refusal's reason code (and then must not call Release).
func (a *Admitter) Admit(now time.Time) mqtt.ReasonCode {
	n := a.open.Add(1)
	if a.cfg.MaxConns > 0 && n > int64(a.cfg.MaxConns) {
		a.open.Add(-1)
		a.count(ReasonConnCap)
		return mqtt.ServerBusy
	}
	if a.accept != nil && !a.accept.Allow(now) {
		a.open.Add(-1)
		a.count(ReasonAcceptRate)
		return mqtt.ConnectionRateExceeded
	}
	return mqtt.Success
}

// Release ends a connection that Admit admitted: it no longer counts
// against MaxConns.
func (a *Admitter) Release() { a.open.Add(-1) }

// Authenticate checks the credentials of a CONNECT that names no
// Authentication Method: Success, 0x86 Bad user name or password, or 0x87
// Not authorized (auth.ConnackCode's mapping; and for every such client
// when SCRAM users are set and Passwords is not).
func (a *Admitter) Authenticate(c *mqtt.Connect) mqtt.ReasonCode {
	if a.cfg.Passwords == nil {
		if a.cfg.SCRAM != nil {
			a.count(ReasonAuthRequired)
			return mqtt.NotAuthorized
		}
		return mqtt.Success
	}
	user := ""
	if c.HasUsername {
		user = c.Username
	}
	err := a.cfg.Passwords.Authenticate(user, c.Password)
	code := mqtt.ReasonCode(auth.ConnackCode(err, auth.ProtocolLevel5))
	switch code {
	case mqtt.Success:
	case mqtt.BadUserNameOrPassword:
		a.count(ReasonBadCredentials)
	default:
		a.count(ReasonNotAuthorized)
	}
	return code
}

// Allow reports whether the client may publish to (auth.Write) or subscribe
// to (auth.Read) topic; without an ACL everything is allowed.
func (a *Admitter) Allow(clientID, username, topic string, want auth.Access) bool {
	if a.cfg.ACL == nil || a.cfg.ACL.Allow(clientID, username, topic, want) {
		return true
	}
	if want == auth.Write {
		a.count(ReasonACLWrite)
	} else {
		a.count(ReasonACLRead)
	}
	return false
}

// Limits is one client's rate-limit state: two GCRA theoretical arrival
// times, 16 bytes. Its zero value is a full bucket.
type Limits struct {
	msgs, bytes atomic.Int64
}

// AllowPublish reports whether the client with state l may publish a
// message of size payload bytes at now. A refusal is counted by its reason,
// which it returns ("" when allowed).
func (a *Admitter) AllowPublish(l *Limits, now time.Time, size int) (ok bool, reason string) {
	if a.msgs != nil && !a.msgs.Allow(&l.msgs, now) {
		a.count(ReasonPublishRate)
		return false, ReasonPublishRate
	}
	if a.bytes != nil && !a.bytes.AllowN(&l.bytes, now, size) {
		a.count(ReasonByteRate)
		return false, ReasonByteRate
	}
	return true, ""
}
