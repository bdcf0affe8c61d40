package auth

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// hashOf hashes password at bcrypt.MinCost (4). Production files use cost 10
// or more, which takes tens of milliseconds per hash; at MinCost a hash takes
// about a millisecond, so the tests stay fast under -race, where bcrypt runs
// several times slower. The cost does not change what the tests check.
func hashOf(t testing.TB, password string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	require.NoError(t, err)
	return string(h)
}

func TestTask1_ParsePasswords(t *testing.T) {
	alice := hashOf(t, "alice-secret", bcrypt.MinCost)
	bob := hashOf(t, "bob-secret", bcrypt.MinCost+1)

	t.Run("valid file", func(t *testing.T) {
		file := "# Floodgate users\n\nalice:" + alice + "\r\n   bob:" + bob + "  \n# end\n"
		p, err := ParsePasswords(strings.NewReader(file))
		require.NoError(t, err)
		require.NotNil(t, p)
		assert.Equal(t, 2, p.Len())
		assert.Equal(t, alice, string(p.hashes["alice"]))
		assert.Equal(t, bob, string(p.hashes["bob"]))
		assert.NotEmpty(t, p.dummy, "the dummy hash for unknown users must be made (use newPasswords)")
	})

	t.Run("empty file", func(t *testing.T) {
		p, err := ParsePasswords(strings.NewReader("# nobody yet\n"))
		require.NoError(t, err)
		require.NotNil(t, p)
		assert.Equal(t, 0, p.Len())
	})

	// A hash with a cost above MaxCost: bcrypt.Cost reads only the prefix,
	// so the rest need not be a real hash.
	tooCostly := fmt.Sprintf("$2a$%02d$", MaxCost+1) + alice[7:]

	malformed := []struct {
		name, file, line string // line: the text the error must contain
	}{
		{"no colon", "alice:" + alice + "\nbob " + bob + "\n", "line 2"},
		{"empty username", "\n:" + alice + "\n", "line 2"},
		{"space in username", "al ice:" + alice + "\n", "line 1"},
		{"plain-text password", "alice:" + alice + "\n# x\nbob:hunter2\n", "line 3"},
		{"truncated hash", "alice:" + alice[:40] + "\n", "line 1"},
		{"not bcrypt", "alice:" + "$1$" + alice[3:] + "\n", "line 1"},
		{"cost too high", "alice:" + tooCostly + "\n", "line 1"},
		{"duplicate user", "alice:" + alice + "\nbob:" + bob + "\nalice:" + bob + "\n", "line 3"},
		{"line too long", "alice:" + alice + "\n" + strings.Repeat("x", 10_000) + "\n", "line 2"},
	}
	for _, tc := range malformed {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePasswords(strings.NewReader(tc.file))
			require.Error(t, err)
			assert.Nil(t, p)
			assert.ErrorIs(t, err, ErrMalformed)
			assert.Contains(t, err.Error(), tc.line, "the error must name the line")
			assert.NotContains(t, err.Error(), alice[7:], "an error must not echo a hash")
			assert.NotContains(t, err.Error(), bob[7:], "an error must not echo a hash")
		})
	}

	t.Run("duplicate names the first line", func(t *testing.T) {
		_, err := ParsePasswords(strings.NewReader("alice:" + alice + "\nalice:" + bob + "\n"))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "line 1")
	})
}

// countingPasswords builds a Passwords whose compare function records each
// call: which hash it was given.
func countingPasswords(t *testing.T, hashes map[string]string) (*Passwords, *[][]byte) {
	t.Helper()
	m := make(map[string][]byte)
	for u, h := range hashes {
		m[u] = []byte(h)
	}
	p, err := newPasswords(m)
	require.NoError(t, err)
	var calls [][]byte
	p.compare = func(hash, password []byte) error {
		calls = append(calls, hash)
		return bcrypt.CompareHashAndPassword(hash, password)
	}
	return p, &calls
}

func TestTask2_Authenticate(t *testing.T) {
	p, calls := countingPasswords(t, map[string]string{
		"alice": hashOf(t, "alice-secret", bcrypt.MinCost),
		"bob":   hashOf(t, "bob-secret", bcrypt.MinCost+1),
	})

	t.Run("right password", func(t *testing.T) {
		assert.NoError(t, p.Authenticate("alice", []byte("alice-secret")))
		assert.NoError(t, p.Authenticate("bob", []byte("bob-secret")))
	})

	t.Run("wrong password and unknown user are the same error", func(t *testing.T) {
		wrong := p.Authenticate("alice", []byte("bob-secret"))
		unknown := p.Authenticate("mallory", []byte("alice-secret"))
		require.Error(t, wrong)
		require.Error(t, unknown)
		assert.Same(t, ErrBadCredentials, wrong)
		assert.Same(t, ErrBadCredentials, unknown, "an unknown user must look exactly like a wrong password")
	})

	t.Run("password over bcrypt's 72 bytes", func(t *testing.T) {
		assert.Same(t, ErrBadCredentials, p.Authenticate("alice", bytes.Repeat([]byte("a"), 100)))
	})

	t.Run("anonymous is not authorized", func(t *testing.T) {
		assert.Same(t, ErrNotAuthorized, p.Authenticate("", nil))
	})

	// The timing test, as a count: each check of a username does exactly one
	// bcrypt comparison, and an unknown user's comparison is against the
	// dummy hash, whose cost is the highest in the file (bob's). A function
	// that returned early for unknown users would answer in microseconds
	// instead of milliseconds, and an attacker could list the users.
	t.Run("unknown user costs one comparison at the file's cost", func(t *testing.T) {
		*calls = nil
		_ = p.Authenticate("mallory", []byte("x"))
		require.Len(t, *calls, 1, "an unknown user must cost one bcrypt comparison")
		assert.Equal(t, p.dummy, (*calls)[0], "compare against the dummy hash")
		cost, err := bcrypt.Cost((*calls)[0])
		require.NoError(t, err)
		assert.Equal(t, bcrypt.MinCost+1, cost)

		*calls = nil
		_ = p.Authenticate("alice", []byte("wrong"))
		_ = p.Authenticate("alice", []byte("alice-secret"))
		assert.Len(t, *calls, 2, "a known user costs one comparison per check")
	})
}

const testACL = `# devices publish their own readings and read their own commands
write     sensors/%c/#
read      commands/%c
# each user has a private tree
readwrite users/%u/#
read      public/+/status
`

func TestTask3_ACL(t *testing.T) {
	t.Run("parse", func(t *testing.T) {
		acl, err := ParseACL(strings.NewReader(testACL))
		require.NoError(t, err)
		require.NotNil(t, acl)
		assert.Equal(t, []Rule{
			{Access: Write, Pattern: "sensors/%c/#", Line: 2},
			{Access: Read, Pattern: "commands/%c", Line: 3},
			{Access: ReadWrite, Pattern: "users/%u/#", Line: 5},
			{Access: Read, Pattern: "public/+/status", Line: 6},
		}, acl.Rules)
	})

	malformed := []struct{ name, file, line string }{
		{"no pattern", "read a/b\nwrite\n", "line 2"},
		{"unknown access", "\ndelete a/b\n", "line 2"},
		{"extra field", "read a/b c\n", "line 1"},
		{"# not last", "read a/b\nread a/#/b\n", "line 2"},
		{"# inside a level", "read a/b#\n", "line 1"},
		{"+ inside a level", "read a/b\nread a/+b\n", "line 2"},
	}
	for _, tc := range malformed {
		t.Run("malformed "+tc.name, func(t *testing.T) {
			acl, err := ParseACL(strings.NewReader(tc.file))
			require.Error(t, err)
			assert.Nil(t, acl)
			assert.ErrorIs(t, err, ErrMalformed)
			assert.Contains(t, err.Error(), tc.line)
		})
	}

	acl, err := ParseACL(strings.NewReader(testACL))
	require.NoError(t, err)
	require.NotNil(t, acl)

	cases := []struct {
		client, user, topic string
		want                Access
		allowed             bool
	}{
		{"dev1", "", "sensors/dev1/temp", Write, true},
		{"dev1", "", "sensors/dev1", Write, true}, // '#' also matches the parent level
		{"dev1", "", "sensors/dev2/temp", Write, false},
		{"dev1", "", "sensors/dev1/temp", Read, false}, // the rule grants write only
		{"dev1", "", "commands/dev1", Read, true},
		{"dev1", "", "commands/dev1", Write, false},
		{"dev1", "", "commands/dev1", ReadWrite, false},
		{"dev1", "alice", "users/alice/inbox", Read, true},
		{"dev1", "alice", "users/alice/inbox", Write, true},
		{"dev1", "alice", "users/alice/inbox", ReadWrite, true},
		{"dev1", "bob", "users/alice/inbox", Read, false},
		// Read checks a subscription filter: it must be covered by a rule.
		{"dev1", "alice", "users/alice/#", Read, true},
		{"dev1", "alice", "users/alice/+/x", Read, true},
		{"dev1", "alice", "users/+/inbox", Read, false}, // would reach other users
		{"dev1", "alice", "users/#", Read, false},
		{"dev1", "", "public/gw7/status", Read, true},
		{"dev1", "", "public/+/status", Read, true},
		{"dev1", "", "public/#", Read, false},
		{"dev1", "", "public/gw7/status/x", Read, false},
		{"dev1", "", "public/gw7", Read, false},
		// Substituted values that would widen a rule are refused.
		{"+", "", "commands/+", Read, false},
		{"#", "", "sensors/#", Write, false},
		{"a/b", "", "sensors/a/b/c", Write, false},
		{"dev1", "", "users//inbox", Read, false},  // no username: %u rules do not apply
		{"$SYS", "", "commands/$SYS", Read, false}, // a '$' value never applies
		// Substitution is one pass: a client id "%u" is not the username.
		{"%u", "alice", "commands/alice", Read, false},
		{"%u", "alice", "commands/%u", Read, true},
		{"dev1", "alice", "users/alice/inbox", 0, false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s %s %s %v", tc.client, tc.user, tc.topic, tc.want), func(t *testing.T) {
			assert.Equal(t, tc.allowed, acl.Allow(tc.client, tc.user, tc.topic, tc.want))
		})
	}

	t.Run("a client named $SYS does not reach $SYS topics", func(t *testing.T) {
		acl, err := ParseACL(strings.NewReader("readwrite %c/#\n"))
		require.NoError(t, err)
		require.NotNil(t, acl)
		assert.True(t, acl.Allow("dev1", "", "dev1/status", Write))
		assert.False(t, acl.Allow("$SYS", "", "$SYS/broker/uptime", Write))
		assert.False(t, acl.Allow("$SYS", "", "$SYS/#", Read))
	})

	t.Run("wildcards skip $ topics", func(t *testing.T) {
		acl, err := ParseACL(strings.NewReader("read #\nread +/status\nreadwrite $SYS/broker/#\n"))
		require.NoError(t, err)
		require.NotNil(t, acl)
		assert.True(t, acl.Allow("c", "u", "gw/status", Read))
		assert.True(t, acl.Allow("c", "u", "a/b/c", Read))
		assert.False(t, acl.Allow("c", "u", "$SYS/status", Read), "[MQTT-4.7.2-1]")
		assert.False(t, acl.Allow("c", "u", "$SYS/uptime", Read), "[MQTT-4.7.2-1]")
		assert.True(t, acl.Allow("c", "u", "$SYS/broker/load", Read))
		assert.False(t, acl.Allow("c", "u", "$SYS/#", Read))
	})
}

func TestTask4_ServerTLS(t *testing.T) {
	pki := newPKI(t)

	t.Run("server only", func(t *testing.T) {
		cfg, err := ServerTLS(TLSOptions{CertFile: pki.serverCert, KeyFile: pki.serverKey})
		require.NoError(t, err)
		require.NotNil(t, cfg)
		res := handshake(t, cfg, &tls.Config{RootCAs: pki.caPool})
		require.NoError(t, res.serverErr)
		require.NoError(t, res.clientErr)
		assert.GreaterOrEqual(t, res.serverState.Version, uint16(tls.VersionTLS12))
		assert.Empty(t, res.serverState.PeerCertificates, "no client certificate asked for")
	})

	t.Run("client that does not trust the server", func(t *testing.T) {
		cfg, err := ServerTLS(TLSOptions{CertFile: pki.serverCert, KeyFile: pki.serverKey})
		require.NoError(t, err)
		res := handshake(t, cfg, &tls.Config{RootCAs: pki.roguePool})
		require.Error(t, res.clientErr)
		t.Logf("client: %v", res.clientErr)
		var unknown x509.UnknownAuthorityError
		assert.ErrorAs(t, res.clientErr, &unknown)
		assert.Error(t, res.serverErr)
	})

	t.Run("old TLS refused", func(t *testing.T) {
		cfg, err := ServerTLS(TLSOptions{CertFile: pki.serverCert, KeyFile: pki.serverKey})
		require.NoError(t, err)
		require.NotNil(t, cfg)
		assert.Equal(t, uint16(tls.VersionTLS12), cfg.MinVersion)
		res := handshake(t, cfg, &tls.Config{RootCAs: pki.caPool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		assert.Error(t, res.serverErr)
		assert.Error(t, res.clientErr)
	})

	mutual := TLSOptions{CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientCAFile: pki.caFile}

	t.Run("mutual TLS with a trusted client", func(t *testing.T) {
		cfg, err := ServerTLS(mutual)
		require.NoError(t, err)
		res := handshake(t, cfg, &tls.Config{RootCAs: pki.caPool, Certificates: []tls.Certificate{pki.client}})
		require.NoError(t, res.serverErr)
		require.NoError(t, res.clientErr)
		require.Len(t, res.serverState.PeerCertificates, 1)
		assert.Equal(t, "dev-42", res.serverState.PeerCertificates[0].Subject.CommonName)
	})

	t.Run("mutual TLS with an untrusted client", func(t *testing.T) {
		cfg, err := ServerTLS(mutual)
		require.NoError(t, err)
		// A Go client sends a certificate only when it matches the CAs the
		// server asks for; an attacker sends its own regardless.
		res := handshake(t, cfg, &tls.Config{RootCAs: pki.caPool,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pki.rogue, nil }})
		require.Error(t, res.serverErr)
		t.Logf("server: %v", res.serverErr)
		t.Logf("client: %v", res.clientErr)
		var unknown x509.UnknownAuthorityError
		assert.ErrorAs(t, res.serverErr, &unknown, "the server must verify the client's chain")
		assert.Error(t, res.clientErr, "the client learns it was refused")
	})

	t.Run("mutual TLS without a client certificate", func(t *testing.T) {
		cfg, err := ServerTLS(mutual)
		require.NoError(t, err)
		res := handshake(t, cfg, &tls.Config{RootCAs: pki.caPool})
		assert.Error(t, res.serverErr)
		assert.Error(t, res.clientErr)
	})

	t.Run("bad options", func(t *testing.T) {
		_, err := ServerTLS(TLSOptions{})
		assert.ErrorIs(t, err, ErrNoCertificate)

		missing := filepath.Join(t.TempDir(), "nope.pem")
		_, err = ServerTLS(TLSOptions{CertFile: missing, KeyFile: pki.serverKey})
		require.Error(t, err)
		assert.Contains(t, err.Error(), missing)

		_, err = ServerTLS(TLSOptions{CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientCAFile: missing})
		require.Error(t, err)
		assert.Contains(t, err.Error(), missing)

		junk := filepath.Join(t.TempDir(), "junk.pem")
		require.NoError(t, os.WriteFile(junk, []byte("not a certificate\n"), 0o600))
		_, err = ServerTLS(TLSOptions{CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientCAFile: junk})
		require.Error(t, err)
		assert.ErrorIs(t, err, ErrMalformed)
		assert.Contains(t, err.Error(), junk)
	})
}

func TestTask5_ConnackCode(t *testing.T) {
	other := errors.New("password backend unreachable")
	cases := []struct {
		name  string
		err   error
		level byte
		want  byte
	}{
		{"accepted 3.1.1", nil, ProtocolLevel311, 0x00},
		{"accepted 5.0", nil, ProtocolLevel5, 0x00},
		{"bad credentials 3.1.1", ErrBadCredentials, ProtocolLevel311, 0x04},
		{"bad credentials 5.0", ErrBadCredentials, ProtocolLevel5, 0x86},
		{"not authorized 3.1.1", ErrNotAuthorized, ProtocolLevel311, 0x05},
		{"not authorized 5.0", ErrNotAuthorized, ProtocolLevel5, 0x87},
		{"wrapped 3.1.1", fmt.Errorf("connect dev-1: %w", ErrBadCredentials), ProtocolLevel311, 0x04},
		{"wrapped 5.0", fmt.Errorf("connect dev-1: %w", ErrNotAuthorized), ProtocolLevel5, 0x87},
		{"MQTT 3.1 uses the 3.1.1 codes", ErrBadCredentials, 3, 0x04},
		{"other error 3.1.1", other, ProtocolLevel311, 0x03},
		{"other error 5.0", other, ProtocolLevel5, 0x88},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, ConnackCode(tc.err, tc.level), "CONNACK code 0x%02x", tc.want)
		})
	}
}
