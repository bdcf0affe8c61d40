package broker

import (
	"net"
	"strings"

	"floodgate/capstone/admission"
	"floodgate/capstone/ops"
	"floodgate/capstone/session"
	"github.com/prometheus/client_golang/prometheus"
)

// refused feeds admission refusals to the metrics.
func (b *Broker) refused(reason string) {
	m := b.metrics
	if m == nil {
		return
	}
	switch reason {
	case admission.ReasonConnCap:
		m.ConnectionsRefused.WithLabelValues(ops.RefuseCap).Inc()
	case admission.ReasonAcceptRate:
		m.ConnectionsRefused.WithLabelValues(ops.RefuseRate).Inc()
		m.LimiterRejections.WithLabelValues(ops.LimitAccept).Inc()
	case admission.ReasonBadCredentials, admission.ReasonNotAuthorized,
		admission.ReasonAuthFailed, admission.ReasonAuthRequired, admission.ReasonBadAuthMethod:
		m.ConnectionsRefused.WithLabelValues(ops.RefuseAuth).Inc()
	case admission.ReasonPublishRate:
		m.LimiterRejections.WithLabelValues(ops.LimitPublish).Inc()
		m.Drops.WithLabelValues(ops.DropRateLimited).Inc()
	case admission.ReasonByteRate:
		m.LimiterRejections.WithLabelValues(ops.LimitBytes).Inc()
		m.Drops.WithLabelValues(ops.DropRateLimited).Inc()
	case admission.ReasonACLWrite, admission.ReasonACLRead:
		m.Drops.WithLabelValues(ops.DropACL).Inc()
	}
}

// observe maps one of the broker's counter names to the Prometheus metrics.
// b.metrics is set.
func (b *Broker) observe(name string) {
	m := b.metrics
	switch {
	case strings.HasPrefix(name, "disconnect_"):
		reason := strings.TrimPrefix(name, "disconnect_")
		m.ConnectionsClosed.WithLabelValues(reason).Inc()
		switch reason {
		case session.ReasonConnectTimeout:
			m.ConnectionsRefused.WithLabelValues(ops.RefuseTimeout).Inc()
		case session.ReasonProtocolName, session.ReasonBadVersion, session.ReasonNotConnect:
			m.ConnectionsRefused.WithLabelValues(ops.RefuseProtocol).Inc()
		case session.ReasonSlowConsumer:
			m.Drops.WithLabelValues(ops.DropSlowConsumer).Inc()
		case session.ReasonMalformed:
			m.Drops.WithLabelValues(ops.DropMalformed).Inc()
		case session.ReasonReceiveMax:
			m.Drops.WithLabelValues(ops.DropInflightFull).Inc()
		}
	case name == "refused_client_id":
		m.ConnectionsRefused.WithLabelValues(ops.RefuseClientID).Inc()
	case name == "refused_"+session.ReasonStoreBusy:
		m.ConnectionsRefused.WithLabelValues(ops.RefuseStore).Inc()
	case strings.HasPrefix(name, "messages_in_"):
		m.MessagesIn.WithLabelValues(strings.TrimPrefix(name, "messages_in_")).Inc()
	case strings.HasPrefix(name, "messages_out_"):
		m.MessagesOut.WithLabelValues(strings.TrimPrefix(name, "messages_out_")).Inc()
	case name == "no_subscriber":
		m.Drops.WithLabelValues(ops.DropNoSubscriber).Inc()
	case name == "expired":
		m.Drops.WithLabelValues(ops.DropExpired).Inc()
	case name == "too_large_for_client":
		m.Drops.WithLabelValues(ops.DropTooLarge).Inc()
	case name == "sink_refused":
		m.Drops.WithLabelValues(ops.DropSinkFull).Inc()
	case name == "offline_queue_full":
		m.Drops.WithLabelValues(ops.DropQueueFull).Inc()
	}
}

// gauges sets the level metrics from the broker's state.
func (b *Broker) gauges() {
	m := b.metrics
	if m == nil {
		return
	}
	m.Sessions.Set(float64(b.Sessions()))
	m.Subscriptions.Set(float64(b.router.Len()))
	m.Retained.Set(float64(b.router.RetainedCount()))
}

// countingConn counts the bytes a connection reads and writes.
type countingConn struct {
	net.Conn
	in, out prometheus.Counter
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(float64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(float64(n))
	return n, err
}

// SetLinger passes through to a TCP connection (the slow-consumer reset).
func (c *countingConn) SetLinger(sec int) error {
	if tc, ok := c.Conn.(interface{ SetLinger(int) error }); ok {
		return tc.SetLinger(sec)
	}
	return nil
}
