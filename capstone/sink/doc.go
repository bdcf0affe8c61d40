// Package sink is the broker's sink pipeline: messages published on
// configured topic filters are copied, through a bounded queue and chapter
// 4's circuit breaker (floodgate/ch04-tuning/05-breaker), to a Sink: an
// append-only file log (FileLog, the default) or an HTTP webhook (Webhook).
//
// While the sink fails and the breaker is open, records spill to a disk
// spool; they are delivered from it, in order, once the sink takes them
// again, and a restart resumes the spool where delivery stopped. Submit
// never waits for the sink; when the queue and the spool are both full it
// refuses the record with ErrFull and counts it.
//
// The breaker is the reference one only when built with
// -tags floodgate.solution; without the tag, the reader's own breaker runs.
package sink
