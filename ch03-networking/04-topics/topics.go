//go:build !floodgate.solution

package topics

import "errors"

// errTODO is what the unfinished methods return until you write them.
var errTODO = errors.New("topics: not implemented yet")

// ValidateName reports whether name may be used as the topic of a PUBLISH:
// the rules of every topic string, and no wildcard at all [MQTT-4.7.1-1].
// It returns nil for a valid name, or an error wrapping one of the Err values.
func ValidateName(name string) error {
	// TODO(Task 1): call checkString, then refuse '+' and '#' anywhere.
	return nil
}

// ValidateFilter reports whether filter may be used in a SUBSCRIBE or an
// UNSUBSCRIBE. A "$share/..." filter is checked as a plain filter here; use
// [ParseShare] to check its shape as a shared subscription.
func ValidateFilter(filter string) error {
	// TODO(Task 1): call checkString, then walk the levels with nextLevel:
	// '#' only as the whole last level, '+' only as a whole level.
	return nil
}

// ParseShare splits a shared subscription "$share/{group}/{filter}" into its
// group and its topic filter, and checks both [MQTT-4.8.2-1]
// [MQTT-4.8.2-2]. A filter that does not start with "$share/" is not shared:
// ParseShare returns group "" and the filter itself, validated.
func ParseShare(filter string) (group, topicFilter string, err error) {
	// TODO(Task 2): strip SharePrefix, cut the group at the next '/', check
	// the group, then validate what is left as a filter.
	return "", filter, nil
}

// MatchFilter reports whether the topic filter matches the topic name. Both
// must be valid; for invalid input the result is false. It allocates nothing.
//
// '+' matches exactly one level, which may be empty; '#' matches its parent
// level and any number of levels below it [MQTT-4.7.1-2]. A wildcard at the
// first level of the filter does not match a name that starts with '$'
// [MQTT-4.7.2-1], so "#" does not see "$SYS/uptime".
func MatchFilter(filter, name string) bool {
	// TODO(Task 3): walk filter and name level by level with nextLevel.
	return false
}

// Subscribe stores value for key under filter, which may be a shared
// subscription ("$share/group/filter"). If key already holds a subscription
// for the same filter and group, its value is replaced and replaced is true
// [MQTT-3.8.4-3]. It returns an error, and changes nothing, if the filter is
// not valid.
func (t *Trie[K, V]) Subscribe(filter string, key K, value V) (replaced bool, err error) {
	// TODO(Task 4): ParseShare, then under t.mu.Lock walk or create one
	// node per level, and add or replace the entry at the last one.
	return false, errTODO
}

// Unsubscribe removes key's subscription to filter (and to its group, for a
// "$share/..." filter). It reports whether there was one. Nodes left with no
// subscriptions and no children are removed, so a trie whose subscriptions
// have all gone holds no memory for them.
func (t *Trie[K, V]) Unsubscribe(filter string, key K) (bool, error) {
	// TODO(Task 5): find the node, remove the entry, prune empty nodes.
	return false, errTODO
}

// Match appends to dst every subscription whose filter matches the topic
// name, and returns the extended slice. With enough capacity in dst it
// allocates nothing. Entries come in no particular order, and one key
// appears once per matching filter: merging overlapping subscriptions is the
// caller's choice [MQTT-3.3.5-1]. An invalid name matches nothing.
func (t *Trie[K, V]) Match(name string, dst []Entry[K, V]) []Entry[K, V] {
	// TODO(Task 4): under t.mu.RLock, follow the literal level, "+" and
	// "#" children at each level; skip wildcards at the first level of a
	// '$' topic.
	return dst
}

// Len returns the number of subscriptions in the trie.
func (t *Trie[K, V]) Len() int {
	// TODO(Task 4): read t.n under the read lock.
	return 0
}
