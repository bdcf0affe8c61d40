package ops_test

import (
	"fmt"

	"floodgate/capstone/ops"
)

// /debug/pprof on every interface is refused before anything listens.
func ExampleNewServer_pprofNotLoopback() {
	_, err := ops.NewServer(ops.ServerConfig{Addr: ":8080", Pprof: true})
	fmt.Println(err)
	// Output: ops: address ":8080": ops: /debug/pprof is only served on a loopback address (127.0.0.0/8, ::1 or localhost)
}

// The broker updates the collectors; the status page reads them back.
func ExampleMetrics_Snapshot() {
	m := ops.NewMetrics()
	m.ConnectionsCurrent.Set(2)
	m.Drops.WithLabelValues(ops.DropSlowConsumer).Inc()
	m.SetBreakerState("sink", ops.BreakerHalfOpen)
	s := m.Snapshot(ops.Snapshot{})
	fmt.Println(s.Connections, s.Drops, s.Breakers)
	// Output: 2 [{slow_consumer 1}] [{sink half-open}]
}
