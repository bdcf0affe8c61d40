//go:build !floodgate.solution

package broker

import "time"

// openSession gives connection c the session of client id, and reports
// whether an existing session was resumed (CONNACK's Session Present).
//
// If another connection holds the session, it is closed and openSession
// waits for it to finish before going on [MQTT-3.1.4-2]: a client id has
// one connection at a time. With clean set, an existing session is thrown
// away and a new one begins [MQTT-3.1.2-6]; Session Present is then false
// [MQTT-3.2.2-2]. persistent says whether the session outlives c.
func (b *Broker) openSession(c *conn, id string, clean, persistent bool) (s *session, present bool) {
	// TODO(Task 1): under b.mu, look up b.sessions[id]. If s.owner is set,
	// close it, wait for <-owner.done without holding b.mu, and look again.
	// Then reuse the session (present) or make one with b.newSession and
	// store it, set s.owner = c and s.persistent. A discarded session's
	// subscriptions go with b.dropSubscriptions.
	//
	// For now every connection gets a brand-new session that nobody else
	// can find: clients can connect, but nothing persists and no client id
	// is ever taken over.
	return b.newSession(id), false
}

// retain stores m as its topic's retained message, replacing the one before
// [MQTT-3.3.1-5]. An empty payload removes the topic's retained message and
// is not stored itself [MQTT-3.3.1-10] [MQTT-3.3.1-11].
func (b *Broker) retain(m *message) {
	// TODO(Task 2): update b.retained under b.retainMu.
}

// retainedFor returns the retained messages whose topics match filter, for a
// new subscription to receive [MQTT-3.3.1-6].
func (b *Broker) retainedFor(filter string) []*message {
	// TODO(Task 2): scan b.retained under b.retainMu.RLock with
	// topics.MatchFilter.
	return nil
}

// closeConn ends connection c of session s. graceful means the client sent
// DISCONNECT: its will is discarded [MQTT-3.1.2-10]. Any other end (a
// dropped socket, a protocol error, a missed keepalive, a takeover)
// publishes the will [MQTT-3.1.2-8]. A session that is not persistent ends
// with its connection [MQTT-3.1.2-6]; a persistent one stays, offline, and
// keeps collecting QoS 1 messages. s may be nil if c never got a session.
func (b *Broker) closeConn(c *conn, s *session, graceful bool) {
	// TODO(Task 3): release s (only if c still owns it), end a session that
	// is not persistent, and publish c.will with b.publish unless graceful.
}

// sendQoS1 sends o to the client with a fresh packet identifier and keeps it
// in flight until the PUBACK; with no client connected it queues o, dropping
// the oldest queued message when the queue is full. s.mu is held.
func (s *session) sendQoS1(o outbound) {
	// TODO(Task 4): queue while s.conn is nil (bounded by s.b.cfg.MaxQueued,
	// count drops in s.b.dropped); otherwise s.nextPacketID, append to
	// s.inflight and s.conn.writePublish(o, 1, false).
}

// ack handles the PUBACK for packet id: the message is delivered and
// forgotten. It reports whether id was in flight. s.mu is held.
func (s *session) ack(id uint16) bool {
	// TODO(Task 4): remove id from s.inflight, keeping the order.
	return false
}

// redeliver runs when a client has just (re)connected and s.conn is set:
// every message still in flight is sent again, in order, with its original
// packet identifier and the DUP flag [MQTT-4.4.0-1] [MQTT-3.3.1-1]; then the
// queue is sent. s.mu is held.
func (s *session) redeliver() {
	// TODO(Task 4): resend s.inflight with dup set, then send s.queue.
}

// readTimeout is how long the broker waits for the next packet from a client
// whose CONNECT asked for keepAlive seconds: one and a half times that
// [MQTT-3.1.2-24]. 0 turns the check off.
func readTimeout(keepAlive uint16) time.Duration {
	// TODO(Task 5): keepAlive is in seconds.
	return 0
}
