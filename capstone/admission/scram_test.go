//go:build floodgate.solution

package admission

import (
	"strings"
	"testing"

	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xdg-go/scram"
)

func scramAdmitter(t *testing.T, lines ...string) *Admitter {
	t.Helper()
	u, err := ParseSCRAMUsers(strings.NewReader("# users\n\n" + strings.Join(lines, "\n") + "\n"))
	require.NoError(t, err)
	a, err := New(Config{SCRAM: u})
	require.NoError(t, err)
	return a
}

// converse runs a whole exchange with a SCRAM client; it returns the
// server's error, if any, and whether the client accepted the server's
// final message (the server proved it holds the user's ServerKey).
func converse(t *testing.T, a *Admitter, user, password string) (serverErr error, serverOK bool) {
	t.Helper()
	e, code := a.StartAuth(MethodSCRAMSHA256)
	require.Equal(t, mqtt.Success, code)
	client, err := scram.SHA256.NewClient(user, password, "")
	require.NoError(t, err)
	conv := client.NewConversation()
	c1, err := conv.Step("")
	require.NoError(t, err)
	s1, done, err := e.Step([]byte(c1))
	require.NoError(t, err, "the first step succeeds for any well-formed user")
	require.False(t, done)
	c2, err := conv.Step(string(s1))
	require.NoError(t, err)
	s2, done, err := e.Step([]byte(c2))
	require.True(t, done)
	if err != nil {
		return err, false
	}
	_, cerr := conv.Step(string(s2))
	return nil, cerr == nil && conv.Valid()
}

// A line HashSCRAM makes authenticates its password, and only it; the
// server proves itself back with its final message.
func TestSCRAM_HashAndExchange(t *testing.T) {
	line, err := HashSCRAM("alice", "s3cret", 0)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(line, "alice:SCRAM-SHA-256$4096:"), line)
	a := scramAdmitter(t, line)
	err, ok := converse(t, a, "alice", "s3cret")
	require.NoError(t, err)
	assert.True(t, ok, "the client verifies the server signature")
	err, _ = converse(t, a, "alice", "wrong")
	assert.Error(t, err)
	assert.Equal(t, uint64(1), a.Counts()[ReasonAuthFailed])
}

// RFC 5802 section 9: an unknown user gets a salt and iteration count like
// a known one (the same each time), and fails only at the proof.
func TestSCRAM_UnknownUserLooksKnown(t *testing.T) {
	line, err := HashSCRAM("alice", "pw", 0)
	require.NoError(t, err)
	a := scramAdmitter(t, line)
	err, _ = converse(t, a, "mallory", "pw")
	assert.Error(t, err)
	first := func() string {
		e, _ := a.StartAuth(MethodSCRAMSHA256)
		s1, _, err := e.Step([]byte("n,,n=mallory,r=abc"))
		require.NoError(t, err)
		_, rest, _ := strings.Cut(string(s1), ",s=") // drop the nonce
		return rest
	}
	assert.Equal(t, first(), first(), "same salt and iterations for the same unknown user")
	assert.Contains(t, first(), ",i=4096")
}

// saltAndIters returns the salt and iteration count a's server-first
// message gives user ("s=...,i=...", the nonce dropped).
func saltAndIters(t *testing.T, a *Admitter, user string) string {
	t.Helper()
	e, code := a.StartAuth(MethodSCRAMSHA256)
	require.Equal(t, mqtt.Success, code)
	s1, _, err := e.Step([]byte("n,,n=" + user + ",r=abc"))
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(s1), ",s=")
	require.True(t, ok, string(s1))
	return rest
}

// An unknown user's salt survives a restart (the same users file parsed
// again), as a known user's does: a salt that changed only for unknown
// users would tell them apart. Editing the file changes the decoys.
func TestSCRAM_DecoyStableAcrossRestarts(t *testing.T) {
	alice, err := HashSCRAM("alice", "pw", 0)
	require.NoError(t, err)
	bob, err := HashSCRAM("bob", "pw", 0)
	require.NoError(t, err)
	before, after := scramAdmitter(t, alice, bob), scramAdmitter(t, bob, alice)
	assert.Equal(t, saltAndIters(t, before, "alice"), saltAndIters(t, after, "alice"))
	assert.Equal(t, saltAndIters(t, before, "mallory"), saltAndIters(t, after, "mallory"),
		"the same file, in any order, gives an unknown user the same salt")
	assert.NotEqual(t, saltAndIters(t, before, "mallory"), saltAndIters(t, before, "trudy"))
	edited := scramAdmitter(t, alice)
	assert.NotEqual(t, saltAndIters(t, before, "mallory"), saltAndIters(t, edited, "mallory"))
}

// An unknown user gets the iteration count and salt length most users
// have, not fixed ones that would stand out in a file hashed with more
// iterations (or copied from PostgreSQL with another salt length).
func TestSCRAM_DecoyFactorsLikeUsers(t *testing.T) {
	var lines []string
	for _, u := range []string{"alice", "bob", "carol"} {
		l, err := HashSCRAM(u, "pw", 10000)
		require.NoError(t, err)
		lines = append(lines, l)
	}
	odd, err := HashSCRAM("dave", "pw", 0) // 4096: the odd one out
	require.NoError(t, err)
	a := scramAdmitter(t, append(lines, odd)...)
	known := saltAndIters(t, a, "alice")
	assert.True(t, strings.HasSuffix(known, ",i=10000"), known)
	unknown := saltAndIters(t, a, "mallory")
	assert.True(t, strings.HasSuffix(unknown, ",i=10000"), unknown)
	assert.Equal(t, len(known), len(unknown), "a salt as long as the users'")

	// A 20-byte salt (keys need not match it to parse).
	_, verifier, _ := strings.Cut(odd, ":")
	i := strings.Index(verifier, ":")
	j := strings.Index(verifier, "$"+strings.SplitN(verifier[i+1:], "$", 2)[1])
	salt20 := "AAECAwQFBgcICQoLDA0ODxAREhM=" // base64 of 20 bytes
	line := "erin:" + verifier[:i+1] + salt20 + verifier[j:]
	a = scramAdmitter(t, line)
	assert.Equal(t, len(saltAndIters(t, a, "erin")), len(saltAndIters(t, a, "mallory")), line)
}

// Only SCRAM-SHA-256 is a method, and only with users: 0x8C, counted.
func TestSCRAM_BadMethod(t *testing.T) {
	a := scramAdmitter(t)
	_, code := a.StartAuth("SCRAM-SHA-1")
	assert.Equal(t, mqtt.BadAuthenticationMethod, code)
	none, err := New(Config{})
	require.NoError(t, err)
	_, code = none.StartAuth(MethodSCRAMSHA256)
	assert.Equal(t, mqtt.BadAuthenticationMethod, code)
	assert.Equal(t, uint64(1), a.Counts()[ReasonBadAuthMethod])
}

// With SCRAM users and no password file, a client that names no method is
// not authorized.
func TestSCRAM_RequiredWithoutPasswords(t *testing.T) {
	a := scramAdmitter(t)
	assert.Equal(t, mqtt.NotAuthorized, a.Authenticate(&mqtt.Connect{ClientID: "x"}))
	assert.Equal(t, uint64(1), a.Counts()[ReasonAuthRequired])
}

// A malformed message, a step too many and an authorization identity that
// is not the user each fail the exchange.
func TestSCRAM_BadMessages(t *testing.T) {
	line, err := HashSCRAM("alice", "pw", 0)
	require.NoError(t, err)
	a := scramAdmitter(t, line)
	e, _ := a.StartAuth(MethodSCRAMSHA256)
	_, done, err := e.Step([]byte("garbage"))
	assert.Error(t, err)
	assert.True(t, done)
	e, _ = a.StartAuth(MethodSCRAMSHA256)
	_, _, err = e.Step([]byte("n,a=bob,n=alice,r=abc"))
	assert.ErrorContains(t, err, "authorization identity")
	e, _ = a.StartAuth(MethodSCRAMSHA256)
	_, _, err = e.Step([]byte("n,,n=alice,r=abc"))
	require.NoError(t, err)
	_, _, err = e.Step([]byte("c=biws,r=other,p=AAAA"))
	assert.Error(t, err, "the nonce is not the server's")
	_, _, err = e.Step([]byte("c=biws,r=other,p=AAAA"))
	assert.Error(t, err, "a step too many")
}

// A bad users file is a clear error naming its line.
func TestParseSCRAMUsers_Errors(t *testing.T) {
	good, err := HashSCRAM("alice", "pw", 0)
	require.NoError(t, err)
	_, verifier, _ := strings.Cut(good, ":")
	for name, line := range map[string]string{
		"no colon":       "alice",
		"other method":   "alice:SCRAM-SHA-1$4096:c2FsdA==$AAAA:AAAA",
		"few iterations": "alice:" + strings.Replace(verifier, "$4096:", "$1000:", 1),
		"short key":      "alice:SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA",
		"bad base64":     "alice:SCRAM-SHA-256$4096:!!$AAAA:AAAA",
		"twice":          good + "\n" + good,
	} {
		_, err := ParseSCRAMUsers(strings.NewReader("# c\n" + line + "\n"))
		assert.ErrorIs(t, err, ErrBadSCRAMUsers, name)
		want := "line 2"
		if name == "twice" {
			want = "line 3"
		}
		assert.ErrorContains(t, err, want, name)
	}
	_, err = HashSCRAM("a:b", "pw", 0)
	assert.Error(t, err)
	_, err = HashSCRAM("a", "pw", 100)
	assert.Error(t, err)
}

// A failed re-authentication counts apart (ReasonReauthFailed): it closes
// a connection admitted before, it refuses none. Confirm fails an exchange
// whose user is not the one expected, counted as its failures are.
func TestSCRAM_ReauthFailuresCountApart(t *testing.T) {
	line, err := HashSCRAM("alice", "pw", 0)
	require.NoError(t, err)
	a := scramAdmitter(t, line)
	e, code := a.StartReauth(MethodSCRAMSHA256)
	require.Equal(t, mqtt.Success, code)
	_, _, err = e.Step([]byte("garbage"))
	assert.Error(t, err)
	e, _ = a.StartReauth(MethodSCRAMSHA256)
	_, _, err = e.Step([]byte("n,,n=bob,r=abc"))
	require.NoError(t, err)
	assert.False(t, e.Confirm("alice"))
	assert.Equal(t, uint64(2), a.Counts()[ReasonReauthFailed])
	assert.Zero(t, a.Counts()[ReasonAuthFailed])

	e, _ = a.StartAuth(MethodSCRAMSHA256)
	_, _, err = e.Step([]byte("n,,n=alice,r=abc"))
	require.NoError(t, err)
	assert.True(t, e.Confirm("alice"))
	assert.False(t, e.Confirm("bob"))
	assert.Equal(t, uint64(1), a.Counts()[ReasonAuthFailed])
}
