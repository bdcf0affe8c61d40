package topics

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// The workload: 100,000 subscriptions from a fleet of 100 regions of 1,000
// devices. Eight in ten follow one device's temperature exactly, one in ten
// follows everything one device says ("fleet/r7/dev42/#"), and one in ten
// follows one device number's temperature across all regions
// ("fleet/+/dev42/temp").
const benchSubs = 100_000

func benchFilter(i int) string {
	r, d := i%100, (i/100)%1000
	switch i % 10 {
	case 8:
		return fmt.Sprintf("fleet/r%d/dev%d/#", r, d)
	case 9:
		return fmt.Sprintf("fleet/+/dev%d/temp", d)
	default:
		return fmt.Sprintf("fleet/r%d/dev%d/temp", r, d)
	}
}

// benchTopics are the names published to: random devices' temperatures.
func benchTopics() []string {
	rng := rand.New(rand.NewPCG(7, 7))
	out := make([]string, 1024)
	for i := range out {
		out[i] = fmt.Sprintf("fleet/r%d/dev%d/temp", rng.IntN(100), rng.IntN(1000))
	}
	return out
}

// filterRegexp turns a topic filter into the regular expression the article
// suggests matching topics with.
func filterRegexp(filter string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i, level := range strings.Split(filter, "/") {
		switch {
		case level == "#" && i == 0:
			b.WriteString(".*")
		case level == "#":
			return regexp.MustCompile(b.String() + "(/.*)?$")
		case i > 0:
			b.WriteString("/")
			fallthrough
		default:
			if level == "+" {
				b.WriteString("[^/]*")
			} else {
				b.WriteString(regexp.QuoteMeta(level))
			}
		}
	}
	return regexp.MustCompile(b.String() + "$")
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkMatch100K finds the subscribers of one topic among 100,000
// subscriptions: with the trie, with a linear scan calling MatchFilter, and
// with a linear scan of one compiled regexp per subscription.
func BenchmarkMatch100K(b *testing.B) {
	filters := make([]string, benchSubs)
	var tr Trie[int, byte]
	before := heapInUse()
	for i := range filters {
		filters[i] = benchFilter(i)
		if _, err := tr.Subscribe(filters[i], i, 1); err != nil {
			b.Fatal(err)
		}
	}
	trieBytes := heapInUse() - before
	before = heapInUse()
	res := make([]*regexp.Regexp, len(filters))
	for i, f := range filters {
		res[i] = filterRegexp(f)
	}
	reBytes := heapInUse() - before
	topics := benchTopics()

	// The three must agree, or the comparison means nothing.
	for _, name := range topics[:20] {
		n, nl, nr := len(tr.Match(name, nil)), 0, 0
		for i, f := range filters {
			if MatchFilter(f, name) {
				nl++
			}
			if res[i].MatchString(name) {
				nr++
			}
		}
		if n != nl || n != nr || n == 0 {
			b.Fatalf("%s: trie %d, linear %d, regexp %d matches", name, n, nl, nr)
		}
	}

	b.Run("trie", func(b *testing.B) {
		dst := make([]Entry[int, byte], 0, 256)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			dst = tr.Match(topics[i%len(topics)], dst[:0])
			i++
		}
		b.ReportMetric(float64(trieBytes)/benchSubs, "heapB/sub")
	})
	b.Run("linear", func(b *testing.B) {
		b.ReportAllocs()
		i, n := 0, 0
		for b.Loop() {
			name := topics[i%len(topics)]
			for _, f := range filters {
				if MatchFilter(f, name) {
					n++
				}
			}
			i++
		}
	})
	b.Run("regexp", func(b *testing.B) {
		b.ReportAllocs()
		i, n := 0, 0
		for b.Loop() {
			name := topics[i%len(topics)]
			for _, re := range res {
				if re.MatchString(name) {
					n++
				}
			}
			i++
		}
		b.ReportMetric(float64(reBytes)/benchSubs, "heapB/sub")
	})
}
