// Package ops is the broker's operations surface: Prometheus metrics on the
// broker's own registry (Metrics), and an HTTP server (Server) with
// /metrics, /healthz, an opt-in /debug/pprof that only binds to loopback,
// and a live status page fed by server-sent events.
//
// The broker's stages update the collectors in Metrics directly; the status
// page reads them back once a second through Snapshot, so the page and
// /metrics can never disagree.
package ops
