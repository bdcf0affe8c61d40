package ops

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Label values the broker uses. The metrics accept any string, but the
// status page and the operator guide name these.
const (
	// Drop reasons (label "reason" of floodgate_drops_total).
	DropSlowConsumer = "slow_consumer" // a subscriber's outbound queue was full
	DropQueueFull    = "queue_full"    // a message was refused by a full queue without a disconnect
	DropExpired      = "expired"       // an MQTT 5 message expired before delivery
	DropNoSubscriber = "no_subscriber" // published to a topic nobody subscribes to
	DropTooLarge     = "too_large"     // larger than the receiver's maximum packet size
	DropSinkFull     = "sink_full"     // the sink pipeline's queue and spool were both full
	DropACL          = "acl"           // refused by a topic ACL
	DropMalformed    = "malformed"     // a malformed packet closed its connection
	DropRateLimited  = "rate_limited"  // refused by a per-client publish limiter
	DropInflightFull = "inflight_full" // receive maximum exceeded (0x93)

	// Refusal reasons (label "reason" of floodgate_connections_refused_total).
	RefuseCap      = "cap"       // the connection cap was reached
	RefuseRate     = "rate"      // the accept-rate limiter said no
	RefuseAuth     = "auth"      // bad user name or password
	RefuseProtocol = "protocol"  // bad protocol name or version
	RefuseClientID = "client_id" // client identifier not valid
	RefuseTimeout  = "timeout"   // no CONNECT in time (slowloris)
	RefuseShutdown = "shutdown"  // the broker is shutting down
	RefuseStore    = "store"     // the store's queue is full (a persistent session)

	// Limiter kinds (label "kind" of floodgate_limiter_rejections_total).
	LimitAccept  = "accept"  // accept-rate token bucket
	LimitPublish = "publish" // per-client publish rate (GCRA)
	LimitBytes   = "bytes"   // per-client byte rate (GCRA)
)

// Metrics holds the broker's Prometheus collectors, registered on their own
// Registry (never the global one, so two brokers in one test process do not
// collide). Every field is safe for concurrent use, as Prometheus
// collectors are; the struct itself is not changed after NewMetrics.
//
// The metric names, all prefixed floodgate_:
//
//	connections_current              gauge    open client connections
//	connections_accepted_total       counter  connections admitted (past the cap and the accept limiter)
//	connections_refused_total        counter  connections refused, by reason (cap, rate, auth, protocol, client_id, timeout, shutdown)
//	connections_closed_total         counter  connections closed, by reason (client, keepalive, takeover, malformed, slow_consumer, shutdown, ...)
//	messages_in_total                counter  PUBLISH packets received from clients, by qos ("0", "1", "2")
//	messages_out_total               counter  PUBLISH packets sent to clients, by qos
//	bytes_in_total                   counter  bytes read from client connections
//	bytes_out_total                  counter  bytes written to client connections
//	drops_total                      counter  messages not delivered, by reason (see the Drop... constants)
//	limiter_rejections_total         counter  limiter refusals, by kind (accept, publish, bytes)
//	sessions                         gauge    sessions held, connected or not
//	subscriptions                    gauge    subscriptions held, over all sessions
//	retained_messages                gauge    retained messages held
//	queue_depth_messages             gauge    messages waiting in all outbound queues, summed
//	queue_depth                      histogram depth of the outbound queue a message was pushed to, seen at each push
//	breaker_state                    gauge    circuit breaker state, by breaker: 0 closed, 1 half-open, 2 open
//	sink_queue_depth                 gauge    records in the sink pipeline's memory queue
//	sink_spill_depth                 gauge    records waiting in the sink pipeline's disk spool
//	sink_records_total               counter  sink records, by result (accepted, delivered, spilled, rejected, dead_letter)
//	memory_bytes_per_connection      gauge    Go runtime memory in use / connections_current (0 with no connection)
//
// plus the Go runtime and process collectors (go_*, process_*).
type Metrics struct {
	// Registry is where every collector below is registered. Serve it with
	// promhttp.HandlerFor, as Handler does.
	Registry *prometheus.Registry

	ConnectionsCurrent  prometheus.Gauge
	ConnectionsAccepted prometheus.Counter
	ConnectionsRefused  *prometheus.CounterVec // label: reason
	ConnectionsClosed   *prometheus.CounterVec // label: reason

	MessagesIn  *prometheus.CounterVec // label: qos
	MessagesOut *prometheus.CounterVec // label: qos
	BytesIn     prometheus.Counter
	BytesOut    prometheus.Counter

	Drops             *prometheus.CounterVec // label: reason
	LimiterRejections *prometheus.CounterVec // label: kind

	Sessions      prometheus.Gauge
	Subscriptions prometheus.Gauge
	Retained      prometheus.Gauge

	QueueDepth         prometheus.Gauge     // sum over all outbound queues; Add(1) on push, Add(-1) on pop
	QueueDepthObserved prometheus.Histogram // Observe(depth) at each push

	BreakerState   *prometheus.GaugeVec // label: breaker; see SetBreakerState
	SinkQueueDepth prometheus.Gauge
	SinkSpillDepth prometheus.Gauge
	SinkRecords    *prometheus.CounterVec // label: result
}

const namespace = "floodgate"

// NewMetrics returns a Metrics with every collector made and registered on
// a new Registry, together with the Go runtime and process collectors.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
		f(g)
		return g
	}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
		f(c)
		return c
	}
	counterVec := func(name, help, label string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, []string{label})
		f(c)
		return c
	}
	m := &Metrics{Registry: r}
	m.ConnectionsCurrent = gauge("connections_current", "Open client connections.")
	m.ConnectionsAccepted = counter("connections_accepted_total", "Connections admitted past the connection cap and the accept-rate limiter.")
	m.ConnectionsRefused = counterVec("connections_refused_total", "Connections refused, by reason.", "reason")
	m.ConnectionsClosed = counterVec("connections_closed_total", "Connections closed, by reason.", "reason")
	m.MessagesIn = counterVec("messages_in_total", "PUBLISH packets received from clients, by QoS.", "qos")
	m.MessagesOut = counterVec("messages_out_total", "PUBLISH packets sent to clients, by QoS.", "qos")
	m.BytesIn = counter("bytes_in_total", "Bytes read from client connections.")
	m.BytesOut = counter("bytes_out_total", "Bytes written to client connections.")
	m.Drops = counterVec("drops_total", "Messages not delivered, by reason.", "reason")
	m.LimiterRejections = counterVec("limiter_rejections_total", "Limiter refusals, by kind.", "kind")
	m.Sessions = gauge("sessions", "Sessions held, connected or not.")
	m.Subscriptions = gauge("subscriptions", "Subscriptions held over all sessions.")
	m.Retained = gauge("retained_messages", "Retained messages held.")
	m.QueueDepth = gauge("queue_depth_messages", "Messages waiting in all outbound queues, summed.")
	m.QueueDepthObserved = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "queue_depth",
		Help:    "Depth of the outbound queue a message was pushed to, observed at each push.",
		Buckets: []float64{0, 1, 4, 16, 64, 256, 1024, 4096},
	})
	f(m.QueueDepthObserved)
	m.BreakerState = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "breaker_state",
		Help: "Circuit breaker state, by breaker: 0 closed, 1 half-open, 2 open."}, []string{"breaker"})
	f(m.BreakerState)
	m.SinkQueueDepth = gauge("sink_queue_depth", "Records in the sink pipeline's memory queue.")
	m.SinkSpillDepth = gauge("sink_spill_depth", "Records waiting in the sink pipeline's disk spool.")
	m.SinkRecords = counterVec("sink_records_total", "Sink records, by result (accepted, delivered, spilled, rejected, dead_letter).", "result")
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "memory_bytes_per_connection",
		Help: "Go runtime memory in use divided by the open connections (0 with none)."},
		func() float64 { return bytesPerConnection(m.connections()) }))
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Breaker states as the breaker_state gauge holds them (the numbering of
// chapter 4's breaker and of sony/gobreaker).
const (
	BreakerClosed   = 0
	BreakerHalfOpen = 1
	BreakerOpen     = 2
)

// SetBreakerState records breaker name's state (BreakerClosed, BreakerHalfOpen
// or BreakerOpen). It is safe to call from a breaker's OnStateChange.
func (m *Metrics) SetBreakerState(name string, state int) {
	m.BreakerState.WithLabelValues(name).Set(float64(state))
}

// QoSLabel is the label value for a QoS level: "0", "1" or "2".
func QoSLabel(qos byte) string {
	switch qos {
	case 0:
		return "0"
	case 1:
		return "1"
	case 2:
		return "2"
	}
	return "invalid"
}
