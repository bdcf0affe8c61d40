//go:build !floodgate.solution

package ingest

import (
	"context"
	"errors"
	"net"
)

// errTODO is what the unfinished parts of this file return.
var errTODO = errors.New("TODO: not written yet")

// ParseLine parses one line of the protocol, without its line ending:
//
//	device_id,metric,value[,unix_ms]
//
// device_id and metric are 1 to MaxIDBytes bytes of [A-Za-z0-9_.:-]; value
// is a finite number as strconv.ParseFloat reads it; unix_ms, when present, is a non-negative count
// of milliseconds since 1970. Every error wraps ErrMalformed and names the
// field at fault.
func ParseLine(line []byte) (Reading, error) {
	// TODO(task 1): split the line on commas (3 or 4 fields), check each
	// field, and fill in a Reading. Wrap every error with ErrMalformed.
	return Reading{}, errTODO
}

// serve reads lines from a tracked connection until it ends, then untracks
// it. A line longer than Config.MaxLineBytes closes the connection, after
// telling the peer why; a malformed line is counted and skipped.
func (s *Server) serve(c net.Conn) {
	defer s.untrack(c)
	// TODO(task 2): read lines with a buffer of s.cfg.MaxLineBytes, reset the
	// idle deadline before each read, parse each line, and count it
	// (s.record or s.malformed). Close an oversized line's connection with a
	// reason written to the peer.
}

// Serve accepts connections on ln and serves each in its own goroutine until
// Shutdown, when it returns ErrServerClosed. A temporary Accept error (out
// of file descriptors, say) is retried after a back-off that starts at 5 ms,
// doubles, and stops growing at Config.MaxAcceptBackoff; any other error is
// returned. Serve does not close connections on return: Shutdown does.
func (s *Server) Serve(ln net.Listener) error {
	// TODO(task 3): the accept loop: s.track each connection, then serve it
	// in a goroutine; back off on temporary errors; return ErrServerClosed
	// once Shutdown has begun.
	return errTODO
}

// Shutdown stops the server: it closes the listeners, lets every connection
// finish the lines it has already read, and waits for the connection
// goroutines to end. If ctx ends first, it closes the remaining connections,
// waits for their goroutines, and returns ctx's error. Config.Handle must
// return for Shutdown to return.
func (s *Server) Shutdown(ctx context.Context) error {
	// TODO(task 4): mark the server closing (under s.mu), close the
	// listeners, wake every connection's blocked read, and wait for
	// s.wg, or for ctx.
	return errTODO
}
