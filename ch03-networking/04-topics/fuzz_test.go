package topics

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// The validators read bytes straight off the network, so fuzz them: no
// panics, and every accepted input obeys the rules a broker relies on.

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"a/b", "/", "$SYS/x", "a+b", "#", "a\x00", "\xff", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateName(name) != nil {
			return
		}
		if name == "" || len(name) > MaxTopicLen || !utf8.ValidString(name) ||
			strings.ContainsAny(name, "+#\x00") {
			t.Fatalf("ValidateName accepted %q", name)
		}
		if ValidateFilter(name) != nil {
			t.Fatalf("valid name %q is not a valid filter", name)
		}
		if !MatchFilter(name, name) {
			t.Fatalf("name %q does not match itself as a filter", name)
		}
	})
}

func FuzzValidateFilter(f *testing.F) {
	for _, s := range []string{"a/+/b", "#", "a/#", "a/#/b", "a+", "+/+", "$share/g/a", "$share//a", "", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, filter string) {
		group, inner, shareErr := ParseShare(filter)
		if ValidateFilter(filter) != nil {
			if shareErr == nil {
				t.Fatalf("ParseShare accepted %q, which is not a valid filter", filter)
			}
			return
		}
		if filter == "" || len(filter) > MaxTopicLen || !utf8.ValidString(filter) || strings.Contains(filter, "\x00") {
			t.Fatalf("ValidateFilter accepted %q", filter)
		}
		for i, level := range strings.Split(filter, "/") {
			last := i == strings.Count(filter, "/")
			if strings.Contains(level, "#") && (level != "#" || !last) {
				t.Fatalf("ValidateFilter accepted %q: misplaced '#'", filter)
			}
			if strings.Contains(level, "+") && level != "+" {
				t.Fatalf("ValidateFilter accepted %q: misplaced '+'", filter)
			}
		}
		if shareErr == nil && group != "" && (strings.ContainsAny(group, "/+#") || ValidateFilter(inner) != nil) {
			t.Fatalf("ParseShare(%q) = %q, %q", filter, group, inner)
		}
	})
}

// FuzzMatch checks MatchFilter and the trie against the test's reference
// matcher on any valid pair.
func FuzzMatch(f *testing.F) {
	for _, tc := range matchCases {
		f.Add(tc.filter, tc.name)
	}
	f.Fuzz(func(t *testing.T, filter, name string) {
		if ValidateFilter(filter) != nil || ValidateName(name) != nil {
			if MatchFilter(filter, name) {
				t.Fatalf("MatchFilter(%q, %q) matched invalid input", filter, name)
			}
			return
		}
		want := refMatch(filter, name)
		if got := MatchFilter(filter, name); got != want {
			t.Fatalf("MatchFilter(%q, %q) = %v, want %v", filter, name, got, want)
		}
		var tr Trie[int, int]
		if _, _, err := ParseShare(filter); err != nil {
			return // "$share/..." that is a valid plain filter but a bad share
		}
		if _, err := tr.Subscribe(filter, 1, 1); err != nil {
			t.Fatalf("Subscribe(%q): %v", filter, err)
		}
		if strings.HasPrefix(filter, SharePrefix) {
			_, inner, _ := ParseShare(filter)
			want = refMatch(inner, name)
		}
		if got := len(tr.Match(name, nil)) == 1; got != want {
			t.Fatalf("trie with %q on %q: matched %v, want %v", filter, name, got, want)
		}
	})
}
