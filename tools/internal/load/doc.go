// Package load is the engine of the load generator (tools/cmd/loadgen), of
// `make bench` and of `make c1m` (tools/cmd/c1m, scenario [HoldLoad]): it
// opens many MQTT connections to a broker on this machine and runs one
// scenario over them (see [Scenario]).
//
// Contracts:
//
//   - Only loopback. The target and every source address must lie in
//     127.0.0.0/8; anything else is refused with [ErrNotLoopback] before a
//     socket is opened. Connections are spread round robin over many source
//     addresses (127.0.1.x by default), because one address has only one
//     port range to each broker.
//   - Bounded. Every [Config] value has a hard maximum (MaxConns,
//     MaxDuration, ...), and [Run] returns by itself after the ramps,
//     the publishing time, the hold and a drain of at most 5 s.
//   - Light. The sockets are raw and non-blocking, driven by a few event
//     loops (epoll, one goroutine each): an idle connection costs a small
//     struct and no goroutine, timer or buffer. Packets are framed, encoded
//     and decoded with the chapter 3 codec (floodgate/ch03-networking/03-mqtt),
//     which is the reference codec only when built with
//     -tags floodgate.solution: build the load generator with that tag.
//   - Latency is measured from a timestamp that the publisher writes into
//     the first 8 bytes of each payload (monotonic nanoseconds since the run
//     started) to the moment a subscriber's loop decodes the PUBLISH.
//
// Run returns a [Result]; [Result.Write] stores it as JSON, a Markdown table
// and a PNG chart. The engine is Linux only.
package load
