package topics

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTask1_ValidateNameAndFilter(t *testing.T) {
	long := strings.Repeat("a", MaxTopicLen+1)
	names := []struct {
		in   string
		want error
	}{
		{"sensors/dock-7/temp", nil},
		{"/", nil},    // two empty levels are fine
		{"a//b", nil}, // so is an empty level in the middle
		{"$SYS/broker/uptime", nil},
		{"température/été", nil},
		{strings.Repeat("a", MaxTopicLen), nil},
		{"", ErrEmpty},
		{long, ErrTooLong},
		{"a\x00b", ErrBadUTF8},
		{"a\xffb", ErrBadUTF8},
		{"sensors/+/temp", ErrWildcardInName},
		{"sensors/#", ErrWildcardInName},
		{"sensors/a+b", ErrWildcardInName},
	}
	for _, tc := range names {
		err := ValidateName(tc.in)
		if tc.want == nil {
			assert.NoError(t, err, "ValidateName(%.40q)", tc.in)
		} else {
			assert.ErrorIs(t, err, tc.want, "ValidateName(%.40q)", tc.in)
		}
	}
	filters := []struct {
		in   string
		want error
	}{
		{"sensors/+/temp", nil},
		{"sensors/#", nil},
		{"#", nil},
		{"+", nil},
		{"+/+", nil},
		{"/+", nil},
		{"+/tennis/#", nil},
		{"$SYS/#", nil},
		{"$share/g/a/+", nil},
		{"", ErrEmpty},
		{long, ErrTooLong},
		{"a/\x00", ErrBadUTF8},
		{"sport/tennis#", ErrBadMultiLevel},
		{"sport/tennis/#/ranking", ErrBadMultiLevel},
		{"#/", ErrBadMultiLevel},
		{"##", ErrBadMultiLevel},
		{"sport+", ErrBadSingleLevel},
		{"sport/+tennis", ErrBadSingleLevel},
		{"++", ErrBadSingleLevel},
	}
	for _, tc := range filters {
		err := ValidateFilter(tc.in)
		if tc.want == nil {
			assert.NoError(t, err, "ValidateFilter(%.40q)", tc.in)
		} else {
			assert.ErrorIs(t, err, tc.want, "ValidateFilter(%.40q)", tc.in)
		}
	}
}

func TestTask2_ParseShare(t *testing.T) {
	ok := []struct{ in, group, filter string }{
		{"$share/workers/jobs/+", "workers", "jobs/+"},
		{"$share/g/#", "g", "#"},
		{"$share/g//", "g", "/"},
		{"jobs/+", "", "jobs/+"}, // not shared
		{"$SYS/#", "", "$SYS/#"}, // '$' but not "$share/"
		{"$sharefoo/x", "", "$sharefoo/x"},
	}
	for _, tc := range ok {
		group, filter, err := ParseShare(tc.in)
		if assert.NoError(t, err, "ParseShare(%q)", tc.in) {
			assert.Equal(t, tc.group, group, "group of %q", tc.in)
			assert.Equal(t, tc.filter, filter, "filter of %q", tc.in)
		}
	}
	bad := []struct {
		in   string
		want error
	}{
		{"$share/", ErrBadShare},
		{"$share//jobs", ErrBadShare},      // empty group
		{"$share/workers", ErrBadShare},    // no filter
		{"$share/workers/", ErrBadShare},   // empty filter
		{"$share/wo+rk/jobs", ErrBadShare}, // wildcard in group
		{"$share/#/jobs", ErrBadShare},
		{"$share/g/a#", ErrBadMultiLevel}, // the inner filter's error is kept
		{"jobs/a+", ErrBadSingleLevel},    // a plain filter is validated too
	}
	for _, tc := range bad {
		_, _, err := ParseShare(tc.in)
		assert.ErrorIs(t, err, tc.want, "ParseShare(%q)", tc.in)
	}
}

// matchCases are the examples of MQTT 3.1.1 section 4.7 and a few more.
var matchCases = []struct {
	filter, name string
	want         bool
}{
	{"sport/tennis/player1/#", "sport/tennis/player1", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
	{"sport/#", "sport", true},
	{"#", "sport/tennis", true},
	{"#", "/", true},
	{"sport/tennis/+", "sport/tennis/player1", true},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"sport/+", "sport", false},
	{"sport/+", "sport/", true},
	{"+/+", "/finance", true},
	{"/+", "/finance", true},
	{"+", "/finance", false},
	{"+", "finance", true},
	{"a/b", "a/b", true},
	{"a/b", "a/b/c", false},
	{"a/b/c", "a/b", false},
	{"a/+/c", "a/b/c", true},
	{"a/+/c", "a/b/d", false},
	{"A/b", "a/b", false}, // case matters
	{"+/monitor/Clients", "$SYS/monitor/Clients", false},
	{"#", "$SYS/uptime", false},
	{"$SYS/#", "$SYS/uptime", true},
	{"$SYS/#", "$SYS", true},
	{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
	{"a/#", "a/$b", true}, // '$' only counts at the first level
}

func TestTask3_MatchFilter(t *testing.T) {
	for _, tc := range matchCases {
		assert.Equal(t, tc.want, MatchFilter(tc.filter, tc.name), "MatchFilter(%q, %q)", tc.filter, tc.name)
	}
	// Invalid input matches nothing.
	assert.False(t, MatchFilter("a+", "a+"))
	assert.False(t, MatchFilter("#", "a/#"))
	assert.False(t, MatchFilter("", ""))
	allocs := testing.AllocsPerRun(100, func() { MatchFilter("fleet/+/dev7/#", "fleet/r1/dev7/temp") })
	assert.Zero(t, allocs, "MatchFilter allocations")
}

// refMatch is the test's own, independent matcher: split both into levels
// and compare. It is slow and obviously right.
func refMatch(filter, name string) bool {
	f, n := strings.Split(filter, "/"), strings.Split(name, "/")
	if strings.HasPrefix(name, "$") && (f[0] == "+" || f[0] == "#") {
		return false
	}
	for i, level := range f {
		if level == "#" {
			return true
		}
		if i >= len(n) || (level != "+" && level != n[i]) {
			return false
		}
	}
	return len(f) == len(n)
}

func keys(es []Entry[string, int]) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.Group+"|"+e.Key)
	}
	slices.Sort(out)
	return out
}

func TestTask4_TrieSubscribeAndMatch(t *testing.T) {
	t.Run("spec examples", func(t *testing.T) {
		var tr Trie[string, int] // the zero value works
		for i, tc := range matchCases {
			_, err := tr.Subscribe(tc.filter, fmt.Sprint("c", i), i)
			require.NoError(t, err, "Subscribe(%q)", tc.filter)
		}
		for i, tc := range matchCases {
			got := tr.Match(tc.name, nil)
			want := fmt.Sprint("c", i)
			found := slices.ContainsFunc(got, func(e Entry[string, int]) bool { return e.Key == want })
			assert.Equal(t, tc.want, found, "filter %q on name %q", tc.filter, tc.name)
		}
		assert.Equal(t, len(matchCases), tr.Len())
	})
	t.Run("replace, groups and bad input", func(t *testing.T) {
		var tr Trie[string, int]
		replaced, err := tr.Subscribe("a/+", "c1", 0)
		require.NoError(t, err)
		assert.False(t, replaced)
		replaced, err = tr.Subscribe("a/+", "c1", 1) // same filter: replace [MQTT-3.8.4-3]
		require.NoError(t, err)
		assert.True(t, replaced)
		_, err = tr.Subscribe("$share/g/a/+", "c1", 2) // same filter, in a group: a second one
		require.NoError(t, err)
		_, err = tr.Subscribe("$share/g/a/b", "c2", 2)
		require.NoError(t, err)
		_, err = tr.Subscribe("a/#/b", "c3", 0)
		require.ErrorIs(t, err, ErrBadMultiLevel)
		_, err = tr.Subscribe("$share//a", "c3", 0)
		require.ErrorIs(t, err, ErrBadShare)
		assert.Equal(t, 3, tr.Len())

		got := tr.Match("a/b", nil)
		assert.Equal(t, []string{"g|c1", "g|c2", "|c1"}, keys(got))
		for _, e := range got {
			if e.Key == "c1" && e.Group == "" {
				assert.Equal(t, 1, e.Value, "the replaced value")
			}
		}
		assert.Empty(t, tr.Match("a/+", nil), "a wildcard in a name matches nothing")
		assert.Empty(t, tr.Match("", nil))
	})
	t.Run("agrees with a reference matcher", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		levels := []string{"a", "b", "", "$x", "+", "#"}
		randFilter := func(wild bool) string {
			n := 1 + rng.IntN(4)
			parts := make([]string, n)
			for i := range parts {
				parts[i] = levels[rng.IntN(len(levels)-2)]
				if wild && rng.IntN(3) == 0 {
					parts[i] = "+"
				}
			}
			if wild && rng.IntN(4) == 0 {
				parts[n-1] = "#"
			}
			if s := strings.Join(parts, "/"); s != "" {
				return s
			}
			return "a"
		}
		var tr Trie[string, int]
		var filters []string
		for i := range 300 {
			f := randFilter(true)
			filters = append(filters, f)
			_, err := tr.Subscribe(f, fmt.Sprint(i), i)
			require.NoError(t, err, f)
		}
		for range 300 {
			name := randFilter(false)
			var want []string
			for i, f := range filters {
				if refMatch(f, name) {
					want = append(want, "|"+fmt.Sprint(i))
				}
			}
			slices.Sort(want)
			got := keys(tr.Match(name, nil))
			if len(want) == 0 {
				want = []string{}
			}
			require.Equal(t, want, got, "name %q", name)
		}
	})
	t.Run("match allocates nothing", func(t *testing.T) {
		var tr Trie[string, int]
		for _, f := range []string{"fleet/+/dev7/#", "fleet/r1/dev7/temp", "#", "fleet/r1/+/+"} {
			_, err := tr.Subscribe(f, f, 1)
			require.NoError(t, err)
		}
		dst := make([]Entry[string, int], 0, 16)
		var n int
		allocs := testing.AllocsPerRun(100, func() { n = len(tr.Match("fleet/r1/dev7/temp", dst[:0])) })
		assert.Equal(t, 4, n)
		assert.Zero(t, allocs, "Match allocations with a big enough dst")
	})
}

func TestTask5_UnsubscribeAndConcurrency(t *testing.T) {
	t.Run("remove and prune", func(t *testing.T) {
		var tr Trie[string, int]
		subs := []struct{ filter, key string }{
			{"a/b/c", "c1"}, {"a/b/c", "c2"}, {"a/+/c", "c1"}, {"a/#", "c1"}, {"$share/g/a/b/c", "c1"},
		}
		for _, s := range subs {
			_, err := tr.Subscribe(s.filter, s.key, 0)
			require.NoError(t, err)
		}
		ok, err := tr.Unsubscribe("a/b/c", "nobody")
		require.NoError(t, err)
		assert.False(t, ok, "unknown key")
		ok, err = tr.Unsubscribe("x/y", "c1")
		require.NoError(t, err)
		assert.False(t, ok, "unknown filter")
		_, err = tr.Unsubscribe("a/#/c", "c1")
		assert.ErrorIs(t, err, ErrBadMultiLevel)

		ok, err = tr.Unsubscribe("a/b/c", "c1")
		require.NoError(t, err)
		assert.True(t, ok)
		assert.Equal(t, []string{"g|c1", "|c1", "|c1", "|c2"}, keys(tr.Match("a/b/c", nil)))
		ok, err = tr.Unsubscribe("$share/g/a/b/c", "c1")
		require.NoError(t, err)
		assert.True(t, ok)
		assert.Equal(t, []string{"|c1", "|c1", "|c2"}, keys(tr.Match("a/b/c", nil)))

		for _, s := range subs[1:4] {
			ok, err := tr.Unsubscribe(s.filter, s.key)
			require.NoError(t, err)
			assert.True(t, ok, "Unsubscribe(%q, %q)", s.filter, s.key)
		}
		assert.Zero(t, tr.Len())
		assert.Empty(t, tr.Match("a/b/c", nil))
		if assert.NotNil(t, tr.root, "the trie was used") {
			assert.Empty(t, tr.root.children, "empty nodes are pruned")
		}
	})
	t.Run("concurrent use", func(t *testing.T) {
		var tr Trie[int, int]
		_, err := tr.Subscribe("fleet/#", -1, 0)
		require.NoError(t, err)
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dst := make([]Entry[int, int], 0, 8)
				for i := range 200 {
					f := fmt.Sprintf("fleet/r%d/+", i%10)
					_, err := tr.Subscribe(f, w, i)
					assert.NoError(t, err)
					dst = tr.Match(fmt.Sprintf("fleet/r%d/dev", i%10), dst[:0])
					assert.NotEmpty(t, dst) // fleet/# is always there
					_, err = tr.Unsubscribe(f, w)
					assert.NoError(t, err)
				}
			}()
		}
		wg.Wait()
		assert.Equal(t, 1, tr.Len(), "only fleet/# is left")
		assert.Len(t, tr.root.children["fleet"].children, 1, "the r* nodes are pruned")
	})
}
