//go:build floodgate.solution

package broker

import (
	"time"

	topics "floodgate/ch03-networking/04-topics"
)

// openSession gives connection c the session of client id, and reports
// whether an existing session was resumed (CONNACK's Session Present).
//
// If another connection holds the session, it is closed and openSession
// waits for it to finish before going on [MQTT-3.1.4-2]: a client id has
// one connection at a time. With clean set, an existing session is thrown
// away and a new one begins [MQTT-3.1.2-6]; Session Present is then false
// [MQTT-3.2.2-2]. persistent says whether the session outlives c.
func (b *Broker) openSession(c *conn, id string, clean, persistent bool) (s *session, present bool) {
	for {
		b.mu.Lock()
		s = b.sessions[id]
		if s != nil && s.owner != nil {
			// Take over: never wait while holding a lock the old
			// connection needs to finish.
			old := s.owner
			b.mu.Unlock()
			old.close()
			<-old.done
			b.mu.Lock()
			if s.owner == old {
				s.owner = nil
			}
			b.mu.Unlock()
			continue // look again: the old one may have ended the session
		}
		var discard *session
		if s != nil && clean {
			discard, s = s, nil
		}
		present = s != nil
		if s == nil {
			s = b.newSession(id)
			b.sessions[id] = s
		}
		s.owner = c
		s.mu.Lock()
		s.persistent = persistent
		s.mu.Unlock()
		b.mu.Unlock()
		if discard != nil {
			b.dropSubscriptions(discard)
		}
		return s, present
	}
}

// retain stores m as its topic's retained message, replacing the one before
// [MQTT-3.3.1-5]. An empty payload removes the topic's retained message and
// is not stored itself [MQTT-3.3.1-10] [MQTT-3.3.1-11].
func (b *Broker) retain(m *message) {
	b.retainMu.Lock()
	defer b.retainMu.Unlock()
	if len(m.payload) == 0 {
		delete(b.retained, m.topic)
		return
	}
	b.retained[m.topic] = m
}

// retainedFor returns the retained messages whose topics match filter, for a
// new subscription to receive [MQTT-3.3.1-6].
func (b *Broker) retainedFor(filter string) []*message {
	b.retainMu.RLock()
	defer b.retainMu.RUnlock()
	var out []*message
	for topic, m := range b.retained {
		if topics.MatchFilter(filter, topic) {
			out = append(out, m)
		}
	}
	return out
}

// closeConn ends connection c of session s. graceful means the client sent
// DISCONNECT: its will is discarded [MQTT-3.1.2-10]. Any other end (a
// dropped socket, a protocol error, a missed keepalive, a takeover)
// publishes the will [MQTT-3.1.2-8]. A session that is not persistent ends
// with its connection [MQTT-3.1.2-6]; a persistent one stays, offline, and
// keeps collecting QoS 1 messages. s may be nil if c never got a session.
func (b *Broker) closeConn(c *conn, s *session, graceful bool) {
	if s != nil {
		b.mu.Lock()
		owner := s.owner == c // false if c was taken over
		if owner {
			s.owner = nil
		}
		s.mu.Lock() // detach has already stopped deliveries to c
		end := owner && !s.persistent
		s.mu.Unlock()
		if end {
			delete(b.sessions, s.id)
		}
		b.mu.Unlock()
		if end {
			b.dropSubscriptions(s)
		}
	}
	if will := c.will; will != nil && !graceful {
		b.publish(will)
	}
	c.will = nil
}

// sendQoS1 sends o to the client with a fresh packet identifier and keeps it
// in flight until the PUBACK; with no client connected it queues o, dropping
// the oldest queued message when the queue is full. s.mu is held.
func (s *session) sendQoS1(o outbound) {
	if s.conn == nil {
		if len(s.queue) >= s.b.cfg.MaxQueued {
			s.queue[0] = outbound{}
			s.queue = s.queue[1:]
			s.b.dropped.Add(1)
		}
		s.queue = append(s.queue, o)
		return
	}
	o.id = s.nextPacketID()
	s.inflight = append(s.inflight, o)
	s.conn.writePublish(o, 1, false)
}

// ack handles the PUBACK for packet id: the message is delivered and
// forgotten. It reports whether id was in flight. s.mu is held.
func (s *session) ack(id uint16) bool {
	for i, o := range s.inflight {
		if o.id == id {
			copy(s.inflight[i:], s.inflight[i+1:])
			s.inflight[len(s.inflight)-1] = outbound{}
			s.inflight = s.inflight[:len(s.inflight)-1]
			return true
		}
	}
	return false
}

// redeliver runs when a client has just (re)connected and s.conn is set:
// every message still in flight is sent again, in order, with its original
// packet identifier and the DUP flag [MQTT-4.4.0-1] [MQTT-3.3.1-1]; then the
// queue is sent. s.mu is held.
func (s *session) redeliver() {
	for _, o := range s.inflight {
		s.conn.writePublish(o, 1, true)
	}
	queue := s.queue
	s.queue = nil
	for _, o := range queue {
		s.sendQoS1(o)
	}
}

// readTimeout is how long the broker waits for the next packet from a client
// whose CONNECT asked for keepAlive seconds: one and a half times that
// [MQTT-3.1.2-24]. 0 turns the check off.
func readTimeout(keepAlive uint16) time.Duration {
	return time.Duration(keepAlive) * 1500 * time.Millisecond
}
