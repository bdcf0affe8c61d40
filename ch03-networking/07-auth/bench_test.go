package auth

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// BenchmarkAuthenticate times one password check at bcrypt's default cost
// (10), for a known user with the right password, a known user with a wrong
// one, and an unknown user. The three should take the same time: that is the
// point of the dummy hash. Each op costs tens of milliseconds, so run it
// with a small -benchtime, e.g. -benchtime=20x.
func BenchmarkAuthenticate(b *testing.B) {
	h, err := bcrypt.GenerateFromPassword([]byte("alice-secret"), bcrypt.DefaultCost)
	if err != nil {
		b.Fatal(err)
	}
	p, err := newPasswords(map[string][]byte{"alice": h})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, user, password string }{
		{"known-user-right-password", "alice", "alice-secret"},
		{"known-user-wrong-password", "alice", "guess"},
		{"unknown-user", "mallory", "guess"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				_ = p.Authenticate(bc.user, []byte(bc.password))
			}
		})
	}
	// What a check that returned early for unknown users would cost: one map
	// lookup. The gap between this and the lines above is what an attacker
	// would measure to list the users.
	b.Run("early-return-would-cost", func(b *testing.B) {
		for b.Loop() {
			_ = p.hashes["mallory"]
		}
	})
}

// BenchmarkAllow times one ACL decision with substitution, the check a
// broker makes on every PUBLISH.
func BenchmarkAllow(b *testing.B) {
	acl := &ACL{Rules: []Rule{
		{Access: Write, Pattern: "sensors/%c/#"},
		{Access: Read, Pattern: "commands/%c"},
		{Access: ReadWrite, Pattern: "users/%u/#"},
	}}
	b.ReportAllocs()
	for b.Loop() {
		if !acl.Allow("dev-42", "alice", "users/alice/inbox", Write) {
			b.Fatal("denied")
		}
	}
}
