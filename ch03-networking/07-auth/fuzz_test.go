package auth

import (
	"bytes"
	"errors"
	"regexp"
	"strconv"
	"testing"
)

// highCost finds bcrypt prefixes whose cost is above 6. The fuzzer skips
// such inputs: a valid file at cost 14 makes a dummy hash that takes a
// second, which would only slow the fuzzer down without finding anything.
var highCost = regexp.MustCompile(`\$2.\$(\d\d)\$`)

func FuzzParsePasswords(f *testing.F) {
	f.Add([]byte("alice:$2a$04$abcdefghijklmnopqrstuu5Xb3y0hFHkJ0iQm0VgT1RU7QK2Lw3eu\n"))
	f.Add([]byte("# comment\n\nbob:$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW\r\n"))
	f.Add([]byte("alice:hunter2\n"))
	f.Add([]byte(":\n::\nx:$2a$99$\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range highCost.FindAllSubmatch(data, -1) {
			if c, _ := strconv.Atoi(string(m[1])); c > 6 {
				t.Skip("bcrypt cost too slow for fuzzing")
			}
		}
		p, err := ParsePasswords(bytes.NewReader(data))
		if err != nil {
			if p != nil {
				t.Fatalf("error %v with a non-nil result", err)
			}
			return
		}
		for user, hash := range p.hashes {
			if user == "" || len(hash) != 60 {
				t.Fatalf("accepted user %q with a %d-byte hash", user, len(hash))
			}
		}
		// Whatever the file, a check must not panic, and a made-up user fails.
		if err := p.Authenticate("\x00no-such-user", []byte("pw")); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("unknown user: got %v", err)
		}
	})
}

func FuzzParseACL(f *testing.F) {
	f.Add([]byte(testACL))
	f.Add([]byte("read #\nread +/status\nreadwrite $SYS/broker/#\n"))
	f.Add([]byte("write a/#/b\nread a+\n"))
	f.Add([]byte("readwrite %u%c/+/%c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		acl, err := ParseACL(bytes.NewReader(data))
		if err != nil {
			if acl != nil {
				t.Fatalf("error %v with a non-nil result", err)
			}
			return
		}
		for _, r := range acl.Rules {
			if r.Access != Read && r.Access != Write && r.Access != ReadWrite {
				t.Fatalf("rule on line %d has access %v", r.Line, r.Access)
			}
			// Allow must not panic on any topic, including the pattern itself.
			for _, topic := range []string{r.Pattern, "", "/", "#", "$SYS/x", "a/b/c"} {
				acl.Allow("c", "u", topic, Read)
				acl.Allow("c", "u", topic, Write)
			}
		}
	})
}
