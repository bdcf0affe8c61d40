// Package topics validates MQTT topic names and topic filters, matches them
// with the + and # wildcards, and keeps subscriptions in a trie so that a
// broker finds every subscriber of a topic in time proportional to the
// topic's depth, not to the number of subscriptions.
//
// A topic name ("sensors/dock-7/temp") is what a PUBLISH carries; a topic
// filter ("sensors/+/temp", "sensors/#") is what a SUBSCRIBE carries. Both
// are split into levels at '/'. The rules come from MQTT 3.1.1 section 4.7
// and MQTT 5.0 section 4.7; each rule in the code cites the normative
// statement it implements, e.g. [MQTT-4.7.1-2]. Where the two versions
// number a statement differently, the 3.1.1 number is given.
//
// The trie, [Trie], is safe for concurrent use: one sync.RWMutex guards the
// whole tree. Subscribe and Unsubscribe take it for writing, Match and Len for
// reading, so many publishers match at once while subscription changes wait
// their turn. Match copies entries into a slice the caller provides and runs
// no caller code under the lock.
package topics

import (
	"errors"
	"sync"
)

// Errors returned by the validators and by [Trie]. Each is wrapped with the
// offending input, so test with errors.Is.
var (
	// ErrEmpty: a topic name or filter must be at least one character long
	// [MQTT-4.7.3-1].
	ErrEmpty = errors.New("topics: empty topic")
	// ErrTooLong: a topic is a UTF-8 string, so at most 65,535 bytes
	// [MQTT-4.7.3-3].
	ErrTooLong = errors.New("topics: topic longer than 65535 bytes")
	// ErrBadUTF8: a topic must be well-formed UTF-8 [MQTT-1.5.3-1] and must
	// not contain U+0000 [MQTT-4.7.3-2].
	ErrBadUTF8 = errors.New("topics: topic is not valid UTF-8 or contains U+0000")
	// ErrWildcardInName: '+' and '#' may appear in filters only, never in a
	// topic name [MQTT-4.7.1-1].
	ErrWildcardInName = errors.New("topics: wildcard in a topic name")
	// ErrBadMultiLevel: '#' must be the whole last level of a filter
	// [MQTT-4.7.1-2].
	ErrBadMultiLevel = errors.New("topics: '#' must be alone in the last level")
	// ErrBadSingleLevel: '+' must occupy a whole level [MQTT-4.7.1-3].
	ErrBadSingleLevel = errors.New("topics: '+' must occupy a whole level")
	// ErrBadShare: a shared subscription is "$share/{ShareName}/{filter}",
	// where ShareName is at least one character with no '/', '+' or '#'
	// [MQTT-4.8.2-1] and filter is a valid topic filter [MQTT-4.8.2-2].
	ErrBadShare = errors.New("topics: malformed $share subscription")
)

// MaxTopicLen is the longest topic name or filter in bytes [MQTT-4.7.3-3].
const MaxTopicLen = 65535

// SharePrefix starts a shared subscription's filter (MQTT 5.0 section 4.8.2).
const SharePrefix = "$share/"

// Entry is one subscription as [Trie.Match] reports it.
//
// A subscription is identified by its filter, its Group and its Key: the same
// Key may hold one plain subscription and one per share group on the same
// filter. A non-empty Group means a shared subscription: the broker delivers
// each message to one member of the group, not to all of them.
type Entry[K comparable, V any] struct {
	Key   K      // who subscribed, e.g. a client id or a session pointer
	Value V      // what the caller stored, e.g. the granted QoS
	Group string // share group name, or "" for a plain subscription
}

// Trie holds subscriptions keyed by topic filter. Its zero value is an empty
// trie ready to use. A Trie must not be copied after first use.
//
// Safe for concurrent use; see the package comment for the locking.
type Trie[K comparable, V any] struct {
	mu   sync.RWMutex // guards root, and every node and entry below it, and n
	root *node[K, V]  // nil until the first Subscribe
	n    int          // number of subscriptions
}

// node is one level of the trie. Literal levels, "+" and "#" are all
// children keyed by their text: a topic name cannot contain a wildcard
// [MQTT-4.7.1-1], so a literal "+" child can only ever be the wildcard.
type node[K comparable, V any] struct {
	children map[string]*node[K, V] // next level; nil when it has none
	subs     []Entry[K, V]          // subscriptions whose filter ends here
}
