package ops

import (
	"runtime"
	"runtime/metrics"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Snapshot is what the status page shows: the broker's figures at one
// moment, read from the Metrics registry, plus the rates since the previous
// snapshot. It marshals to the JSON the page reads.
type Snapshot struct {
	Time time.Time `json:"time"`

	Connections         float64 `json:"connections"`
	ConnectionsAccepted float64 `json:"connectionsAccepted"`
	ConnectionsRefused  []Count `json:"connectionsRefused"` // by reason, largest first

	MessagesIn  float64 `json:"messagesIn"` // totals since start, every QoS
	MessagesOut float64 `json:"messagesOut"`
	BytesIn     float64 `json:"bytesIn"`
	BytesOut    float64 `json:"bytesOut"`

	// Rates per second since the previous snapshot (0 in the first one).
	InPerSec       float64 `json:"inPerSec"`
	OutPerSec      float64 `json:"outPerSec"`
	BytesInPerSec  float64 `json:"bytesInPerSec"`
	BytesOutPerSec float64 `json:"bytesOutPerSec"`

	Drops             []Count `json:"drops"`             // by reason, largest first
	LimiterRejections []Count `json:"limiterRejections"` // by kind, largest first

	Sessions      float64 `json:"sessions"`
	Subscriptions float64 `json:"subscriptions"`
	Retained      float64 `json:"retained"`

	QueueDepth     float64 `json:"queueDepth"`     // messages in all outbound queues
	SinkQueueDepth float64 `json:"sinkQueueDepth"` // records in the sink's memory queue
	SinkSpillDepth float64 `json:"sinkSpillDepth"` // records in the sink's disk spool

	Breakers []BreakerStatus `json:"breakers"`

	BytesPerConnection float64 `json:"bytesPerConnection"`
	MemoryBytes        float64 `json:"memoryBytes"` // Go runtime memory in use
	Goroutines         int     `json:"goroutines"`
}

// Count is one labelled counter value.
type Count struct {
	Label string  `json:"label"`
	Value float64 `json:"value"`
}

// BreakerStatus is one breaker's state.
type BreakerStatus struct {
	Name  string `json:"name"`
	State string `json:"state"` // "closed", "half-open" or "open"
}

// Snapshot reads the figures now. prev is the previous snapshot (zero for
// the first); the rates are computed against it. It is safe for concurrent
// use.
func (m *Metrics) Snapshot(prev Snapshot) Snapshot {
	s := Snapshot{Time: time.Now(), ConnectionsRefused: []Count{}, Drops: []Count{},
		LimiterRejections: []Count{}, Breakers: []BreakerStatus{}} // [] rather than null in JSON
	fams, _ := m.Registry.Gather() // a gather error still returns what it could gather
	for _, f := range fams {
		switch f.GetName() {
		case "floodgate_connections_current":
			s.Connections = sum(f)
		case "floodgate_connections_accepted_total":
			s.ConnectionsAccepted = sum(f)
		case "floodgate_connections_refused_total":
			s.ConnectionsRefused = byLabel(f)
		case "floodgate_messages_in_total":
			s.MessagesIn = sum(f)
		case "floodgate_messages_out_total":
			s.MessagesOut = sum(f)
		case "floodgate_bytes_in_total":
			s.BytesIn = sum(f)
		case "floodgate_bytes_out_total":
			s.BytesOut = sum(f)
		case "floodgate_drops_total":
			s.Drops = byLabel(f)
		case "floodgate_limiter_rejections_total":
			s.LimiterRejections = byLabel(f)
		case "floodgate_sessions":
			s.Sessions = sum(f)
		case "floodgate_subscriptions":
			s.Subscriptions = sum(f)
		case "floodgate_retained_messages":
			s.Retained = sum(f)
		case "floodgate_queue_depth_messages":
			s.QueueDepth = sum(f)
		case "floodgate_sink_queue_depth":
			s.SinkQueueDepth = sum(f)
		case "floodgate_sink_spill_depth":
			s.SinkSpillDepth = sum(f)
		case "floodgate_memory_bytes_per_connection":
			s.BytesPerConnection = sum(f)
		case "floodgate_breaker_state":
			for _, c := range byLabel(f) {
				s.Breakers = append(s.Breakers, BreakerStatus{Name: c.Label, State: breakerName(c.Value)})
			}
			sort.Slice(s.Breakers, func(i, j int) bool { return s.Breakers[i].Name < s.Breakers[j].Name })
		}
	}
	s.MemoryBytes = memoryInUse()
	s.Goroutines = runtime.NumGoroutine()
	if !prev.Time.IsZero() {
		if d := s.Time.Sub(prev.Time).Seconds(); d > 0 {
			rate := func(now, before float64) float64 {
				if now < before { // a counter never goes down; a reset shows as 0
					return 0
				}
				return (now - before) / d
			}
			s.InPerSec = rate(s.MessagesIn, prev.MessagesIn)
			s.OutPerSec = rate(s.MessagesOut, prev.MessagesOut)
			s.BytesInPerSec = rate(s.BytesIn, prev.BytesIn)
			s.BytesOutPerSec = rate(s.BytesOut, prev.BytesOut)
		}
	}
	return s
}

func breakerName(v float64) string {
	switch v {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half-open"
	case BreakerOpen:
		return "open"
	}
	return "unknown"
}

// value is a metric's value whatever its type.
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

func sum(f *dto.MetricFamily) float64 {
	var t float64
	for _, m := range f.GetMetric() {
		t += value(m)
	}
	return t
}

// byLabel lists a one-label family's values, largest first.
func byLabel(f *dto.MetricFamily) []Count {
	var out []Count
	for _, m := range f.GetMetric() {
		label := ""
		if lp := m.GetLabel(); len(lp) > 0 {
			label = lp[0].GetValue()
		}
		out = append(out, Count{Label: label, Value: value(m)})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Value != out[j].Value {
			return out[i].Value > out[j].Value
		}
		return out[i].Label < out[j].Label
	})
	return out
}

// connections reads the connections gauge.
func (m *Metrics) connections() float64 {
	var d dto.Metric
	if err := m.ConnectionsCurrent.Write(&d); err != nil {
		return 0
	}
	return d.GetGauge().GetValue()
}

var memSamples = []metrics.Sample{
	{Name: "/memory/classes/total:bytes"},
	{Name: "/memory/classes/heap/released:bytes"},
}

// memoryInUse is the memory the Go runtime maps minus what it has given
// back to the OS. runtime/metrics does not stop the world.
func memoryInUse() float64 {
	s := make([]metrics.Sample, len(memSamples))
	copy(s, memSamples)
	metrics.Read(s)
	var total, released uint64
	if s[0].Value.Kind() == metrics.KindUint64 {
		total = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		released = s[1].Value.Uint64()
	}
	return float64(total - released)
}

func bytesPerConnection(conns float64) float64 {
	if conns < 1 {
		return 0
	}
	return memoryInUse() / conns
}
