//go:build floodgate.solution

package topics

import (
	"fmt"
	"strings"
)

// ValidateName reports whether name may be used as the topic of a PUBLISH:
// the rules of every topic string, and no wildcard at all [MQTT-4.7.1-1].
// It returns nil for a valid name, or an error wrapping one of the Err values.
func ValidateName(name string) error {
	if err := checkString("topic name", name); err != nil {
		return err
	}
	if strings.ContainsAny(name, "+#") {
		return fmt.Errorf("topic name %q: %w", name, ErrWildcardInName)
	}
	return nil
}

// ValidateFilter reports whether filter may be used in a SUBSCRIBE or an
// UNSUBSCRIBE. A "$share/..." filter is checked as a plain filter here; use
// [ParseShare] to check its shape as a shared subscription.
func ValidateFilter(filter string) error {
	if err := checkString("topic filter", filter); err != nil {
		return err
	}
	for rest := filter; ; {
		level, next, last := nextLevel(rest)
		switch {
		case level == "#" && !last:
			// '#' is the last character of the filter [MQTT-4.7.1-2].
			return fmt.Errorf("topic filter %q: %w", filter, ErrBadMultiLevel)
		case level != "#" && strings.IndexByte(level, '#') >= 0:
			// '#' stands alone after a separator [MQTT-4.7.1-2].
			return fmt.Errorf("topic filter %q: %w", filter, ErrBadMultiLevel)
		case level != "+" && strings.IndexByte(level, '+') >= 0:
			// '+' occupies a whole level [MQTT-4.7.1-3].
			return fmt.Errorf("topic filter %q: %w", filter, ErrBadSingleLevel)
		}
		if last {
			return nil
		}
		rest = next
	}
}

// ParseShare splits a shared subscription "$share/{group}/{filter}" into its
// group and its topic filter, and checks both [MQTT-4.8.2-1]
// [MQTT-4.8.2-2]. A filter that does not start with "$share/" is not shared:
// ParseShare returns group "" and the filter itself, validated.
func ParseShare(filter string) (group, topicFilter string, err error) {
	rest, shared := strings.CutPrefix(filter, SharePrefix)
	if !shared {
		return "", filter, ValidateFilter(filter)
	}
	if err := checkString("shared subscription", filter); err != nil {
		return "", "", err // the group is UTF-8 too [MQTT-1.5.3-1]
	}
	group, topicFilter, ok := strings.Cut(rest, "/")
	if !ok || group == "" || strings.ContainsAny(group, "+#") {
		return "", "", fmt.Errorf("shared subscription %q: %w", filter, ErrBadShare)
	}
	if err := ValidateFilter(topicFilter); err != nil {
		return "", "", fmt.Errorf("shared subscription %q: %w: %w", filter, ErrBadShare, err)
	}
	return group, topicFilter, nil
}

// MatchFilter reports whether the topic filter matches the topic name. Both
// must be valid; for invalid input the result is false. It allocates nothing.
//
// '+' matches exactly one level, which may be empty; '#' matches its parent
// level and any number of levels below it [MQTT-4.7.1-2]. A wildcard at the
// first level of the filter does not match a name that starts with '$'
// [MQTT-4.7.2-1], so "#" does not see "$SYS/uptime".
func MatchFilter(filter, name string) bool {
	if ValidateFilter(filter) != nil || ValidateName(name) != nil {
		return false
	}
	if name[0] == '$' && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		f, fRest, fLast := nextLevel(filter)
		if f == "#" {
			return true
		}
		n, nRest, nLast := nextLevel(name)
		if f != "+" && f != n {
			return false
		}
		switch {
		case fLast && nLast:
			return true
		case nLast:
			// The name ends here: only a trailing "/#" still matches.
			return fRest == "#"
		case fLast:
			return false
		}
		filter, name = fRest, nRest
	}
}

// Subscribe stores value for key under filter, which may be a shared
// subscription ("$share/group/filter"). If key already holds a subscription
// for the same filter and group, its value is replaced and replaced is true
// [MQTT-3.8.4-3]. It returns an error, and changes nothing, if the filter is
// not valid.
func (t *Trie[K, V]) Subscribe(filter string, key K, value V) (replaced bool, err error) {
	group, f, err := ParseShare(filter)
	if err != nil {
		return false, fmt.Errorf("subscribe: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.root == nil {
		t.root = &node[K, V]{}
	}
	n := t.root
	for rest := f; ; {
		level, next, last := nextLevel(rest)
		child := n.children[level]
		if child == nil {
			if n.children == nil {
				n.children = make(map[string]*node[K, V])
			}
			child = &node[K, V]{}
			n.children[level] = child
		}
		n = child
		if last {
			break
		}
		rest = next
	}
	for i := range n.subs {
		if n.subs[i].Key == key && n.subs[i].Group == group {
			n.subs[i].Value = value
			return true, nil
		}
	}
	n.subs = append(n.subs, Entry[K, V]{Key: key, Value: value, Group: group})
	t.n++
	return false, nil
}

// Unsubscribe removes key's subscription to filter (and to its group, for a
// "$share/..." filter). It reports whether there was one. Nodes left with no
// subscriptions and no children are removed, so a trie whose subscriptions
// have all gone holds no memory for them.
func (t *Trie[K, V]) Unsubscribe(filter string, key K) (bool, error) {
	group, f, err := ParseShare(filter)
	if err != nil {
		return false, fmt.Errorf("unsubscribe: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.root == nil {
		return false, nil
	}
	// Walk down, remembering the path so that empty nodes can be pruned.
	var pathBuf [16]*node[K, V]
	var levelBuf [16]string
	path, levels := append(pathBuf[:0], t.root), levelBuf[:0]
	n := t.root
	for rest := f; ; {
		level, next, last := nextLevel(rest)
		if n = n.children[level]; n == nil {
			return false, nil
		}
		path, levels = append(path, n), append(levels, level)
		if last {
			break
		}
		rest = next
	}
	i := 0
	for i < len(n.subs) && (n.subs[i].Key != key || n.subs[i].Group != group) {
		i++
	}
	if i == len(n.subs) {
		return false, nil
	}
	last := len(n.subs) - 1
	n.subs[i] = n.subs[last]
	n.subs[last] = Entry[K, V]{} // drop the references the entry held
	n.subs = n.subs[:last]
	t.n--
	for j := len(path) - 1; j > 0; j-- {
		if len(path[j].subs) > 0 || len(path[j].children) > 0 {
			break
		}
		delete(path[j-1].children, levels[j-1])
	}
	return true, nil
}

// Match appends to dst every subscription whose filter matches the topic
// name, and returns the extended slice. With enough capacity in dst it
// allocates nothing. Entries come in no particular order, and one key
// appears once per matching filter: merging overlapping subscriptions is the
// caller's choice [MQTT-3.3.5-1]. An invalid name matches nothing.
func (t *Trie[K, V]) Match(name string, dst []Entry[K, V]) []Entry[K, V] {
	if ValidateName(name) != nil {
		return dst
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.root == nil {
		return dst
	}
	// Wildcards at the first level do not match '$' topics [MQTT-4.7.2-1].
	return t.root.match(name, name[0] == '$', dst)
}

// match collects the subscriptions below n that match the levels in rest.
func (n *node[K, V]) match(rest string, noWildcards bool, dst []Entry[K, V]) []Entry[K, V] {
	level, next, last := nextLevel(rest)
	if !noWildcards {
		// '#' matches this level and everything below it.
		if h := n.children["#"]; h != nil {
			dst = append(dst, h.subs...)
		}
		if p := n.children["+"]; p != nil {
			dst = p.matched(next, last, dst)
		}
	}
	if c := n.children[level]; c != nil {
		dst = c.matched(next, last, dst)
	}
	return dst
}

// matched is called on the node that matched one level: if that was the
// name's last level, n's own subscriptions match, and so does a "#" below n,
// which also matches its parent level [MQTT-4.7.1-2].
func (n *node[K, V]) matched(rest string, last bool, dst []Entry[K, V]) []Entry[K, V] {
	if !last {
		return n.match(rest, false, dst)
	}
	dst = append(dst, n.subs...)
	if h := n.children["#"]; h != nil {
		dst = append(dst, h.subs...)
	}
	return dst
}

// Len returns the number of subscriptions in the trie.
func (t *Trie[K, V]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.n
}
