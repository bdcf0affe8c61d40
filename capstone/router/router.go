// Package router decides who receives a message: the subscription trie of
// chapter 3's lab 4 (floodgate/ch03-networking/04-topics), the retained
// messages, and the choice of one member per $share group.
//
// The router knows client identifiers, not connections: it returns a list
// of Deliveries and the broker hands each to the client's session. It holds
// no lock while the caller delivers.
package router

import (
	"slices"
	"strings"
	"sync"
	"time"

	mqtt "floodgate/ch03-networking/03-mqtt"
	topics "floodgate/ch03-networking/04-topics"
)

// Message is an application message as the broker keeps it: immutable once
// routed, shared by every session it is delivered to.
type Message struct {
	Topic   string
	Payload []byte
	QoS     mqtt.QoS
	Retain  bool
	// Props holds the properties that travel with the message (payload
	// format, content type, response topic, correlation data, user
	// properties) [MQTT-3.3.2-17] [MQTT-3.3.2-18]; never a topic alias or a
	// subscription identifier.
	Props mqtt.Properties
	// Expires is when the message expires (zero: never) [MQTT-3.3.2-5].
	Expires time.Time
	// From is the client identifier of the publisher ("" for the broker).
	From string
}

// Expired reports whether m's Message Expiry Interval has passed at now.
func (m *Message) Expired(now time.Time) bool {
	return !m.Expires.IsZero() && !now.Before(m.Expires)
}

// Sub is one subscription's options (MQTT 5.0 section 3.8.3.1).
type Sub struct {
	Filter            string // as subscribed, "$share/..." included
	Group             string // the $share group, or ""
	QoS               mqtt.QoS
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	ID                uint32 // Subscription Identifier, 0 for none
}

// Delivery is one client's copy of a routed message: overlapping
// subscriptions of a client are merged into one delivery at the highest QoS
// they grant, with all their subscription identifiers [MQTT-3.3.4-2]
// [MQTT-3.3.4-3].
type Delivery struct {
	Client            string
	QoS               mqtt.QoS // already min(message QoS, subscription QoS)
	RetainAsPublished bool
	SubIDs            []uint32
}

// Router is safe for concurrent use. Its zero value is not usable: use New.
type Router struct {
	// trie holds each subscription once, as its client's key and its
	// options (the session keeps the whole Sub): the filter is the trie's
	// path, the group the entry's.
	trie topics.Trie[string, subVal] // its own lock

	retainMu sync.RWMutex        // guards retained
	retained map[string]*Message // by topic

	shareMu sync.Mutex        // guards next
	next    map[string]uint64 // round-robin counter per group+filter
}

// subVal is a subscription's options as the trie keeps them, 16 bytes:
// what Route needs, and the filter as subscribed only for a $share group
// (the key of its round robin).
type subVal struct {
	id    uint32 // Subscription Identifier, 0 for none
	qos   mqtt.QoS
	flags uint8 // noLocal, retainAsPublished
	share *string
}

const (
	noLocal uint8 = 1 << iota
	retainAsPublished
)

func toVal(s Sub) subVal {
	v := subVal{id: s.ID, qos: s.QoS}
	if s.NoLocal {
		v.flags |= noLocal
	}
	if s.RetainAsPublished {
		v.flags |= retainAsPublished
	}
	if s.Group != "" {
		f := s.Filter
		v.share = &f
	}
	return v
}

// New returns an empty router.
func New() *Router {
	return &Router{retained: make(map[string]*Message), next: make(map[string]uint64)}
}

// Subscribe adds or replaces client's subscription s (s.Filter and s.Group
// set by the caller from topics.ParseShare). It reports whether a
// subscription with the same filter existed [MQTT-3.8.4-3].
func (r *Router) Subscribe(client string, s Sub) (replaced bool, err error) {
	return r.trie.Subscribe(s.Filter, client, toVal(s))
}

// Unsubscribe removes client's subscription to filter, reporting whether
// there was one.
func (r *Router) Unsubscribe(client, filter string) (bool, error) {
	return r.trie.Unsubscribe(filter, client)
}

// Len returns the number of subscriptions.
func (r *Router) Len() int { return r.trie.Len() }

// Route appends to dst the deliveries of m and returns the extended slice.
// No Local subscriptions skip the publisher [MQTT-3.8.3-3]; each $share
// group gets the message once, by one member chosen in turn (MQTT 5.0
// section 4.8.2), skipping members for which online, if not nil, reports
// false unless none is online; a client's overlapping subscriptions become
// one delivery. online is called with none of the router's locks held.
func (r *Router) Route(m *Message, dst []Delivery, online func(client string) bool) []Delivery {
	entries := r.trie.Match(m.Topic, nil)
	start := len(dst)
	add := func(client string, s subVal) {
		q := min(m.QoS, s.qos)
		rap := s.flags&retainAsPublished != 0
		for i := start; i < len(dst); i++ {
			if d := &dst[i]; d.Client == client {
				d.QoS = max(d.QoS, q)
				d.RetainAsPublished = d.RetainAsPublished || rap
				if s.id != 0 {
					d.SubIDs = append(d.SubIDs, s.id)
				}
				return
			}
		}
		d := Delivery{Client: client, QoS: q, RetainAsPublished: rap}
		if s.id != 0 {
			d.SubIDs = []uint32{s.id}
		}
		dst = append(dst, d)
	}
	var groups map[string][]topics.Entry[string, subVal]
	for _, e := range entries {
		if e.Group != "" {
			if groups == nil {
				groups = make(map[string][]topics.Entry[string, subVal])
			}
			k := *e.Value.share
			groups[k] = append(groups[k], e)
			continue
		}
		if e.Value.flags&noLocal != 0 && e.Key == m.From {
			continue
		}
		add(e.Key, e.Value)
	}
	for k, members := range groups {
		slices.SortFunc(members, func(a, b topics.Entry[string, subVal]) int { return strings.Compare(a.Key, b.Key) })
		r.shareMu.Lock()
		n := r.next[k]
		r.next[k] = n + 1
		r.shareMu.Unlock()
		e := members[n%uint64(len(members))]
		if online != nil {
			for i := range len(members) {
				if c := members[(n+uint64(i))%uint64(len(members))]; online(c.Key) {
					e = c
					break
				}
			}
		}
		add(e.Key, e.Value)
	}
	return dst
}

// Retain stores m as its topic's retained message, replacing the one before
// [MQTT-3.3.1-5]; a message with an empty payload removes it instead and is
// not stored [MQTT-3.3.1-10] [MQTT-3.3.1-11].
func (r *Router) Retain(m *Message) {
	r.retainMu.Lock()
	defer r.retainMu.Unlock()
	if len(m.Payload) == 0 {
		delete(r.retained, m.Topic)
		return
	}
	r.retained[m.Topic] = m
}

// Retained returns the retained messages that filter matches and that have
// not expired at now [MQTT-3.3.1-6] [MQTT-3.3.2-5]. A $share filter gets
// none (MQTT 5.0 section 4.8.2: retained messages are not sent for a
// shared subscription).
func (r *Router) Retained(filter string, now time.Time) []*Message {
	if strings.HasPrefix(filter, topics.SharePrefix) {
		return nil
	}
	r.retainMu.RLock()
	defer r.retainMu.RUnlock()
	var out []*Message
	for topic, m := range r.retained {
		if topics.MatchFilter(filter, topic) && !m.Expired(now) {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b *Message) int { return strings.Compare(a.Topic, b.Topic) })
	return out
}

// RetainedCount returns how many retained messages are stored.
func (r *Router) RetainedCount() int {
	r.retainMu.RLock()
	defer r.retainMu.RUnlock()
	return len(r.retained)
}
