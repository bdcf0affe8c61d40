//go:build !floodgate.solution

package tcpscale

import (
	"context"
	"net"
	"time"
)

// Serve accepts connections on l and serves each on its own goroutine until
// Shutdown is called or l fails with an error that is not temporary.
//
// A temporary error (see IsTemporary) pauses the loop, BackoffMin at first and
// twice as long after each error in a row, up to BackoffMax. A connection
// accepted while MaxConns are open is closed at once and counted as Rejected.
//
// Serve always returns a non-nil error: ErrServerClosed after Shutdown, or
// the listener's error wrapped with "accept". Serve closes l when it returns.
func (s *Server) Serve(l net.Listener) error {
	// TODO(Task 1): record l in s.listeners (under s.mu; refuse with
	// ErrServerClosed if s.closed), add one to s.wg for this loop, then loop
	// on l.Accept and start `go s.handle(c)` for each connection.
	// TODO(Task 2): on an error for which IsTemporary is true, count it in
	// s.acceptErrors, wait nextBackoff(...) (or until s.done closes), and go on.
	// TODO(Task 3): admit each connection under s.cfg.MaxConns; close the
	// ones over the cap and count them in s.rejected.
	return ErrNotImplemented
}

// nextBackoff returns the pause after one more temporary error, given the
// previous pause (zero if the last Accept succeeded).
func nextBackoff(prev, lo, hi time.Duration) time.Duration {
	// TODO(Task 2): lo the first time, then double, never above hi.
	return 0
}

// handle echoes what c sends until c closes, fails, or stays silent for
// IdleTimeout. It owns c and closes it.
func (s *Server) handle(c net.Conn) {
	// TODO(Task 1): allocate a buffer of s.cfg.ReadBufferSize, echo until
	// Read fails, then remove c from s.conns, close it, and s.wg.Done().
	// TODO(Task 4): before each Read, set a read deadline IdleTimeout ahead;
	// count a deadline expiry in s.idleClosed.
	c.Close()
}

// Shutdown stops every Serve loop, closes every open connection and waits
// for all the server's goroutines to return. If ctx ends first, Shutdown
// returns ctx's error wrapped with "shutdown"; the goroutines still end on
// their own, since their connections are closed. Calling Shutdown more than
// once is safe.
func (s *Server) Shutdown(ctx context.Context) error {
	// TODO(Task 5): set s.closed and close s.done (once), close every
	// listener and connection, then wait for s.wg or ctx, whichever is first.
	return ErrNotImplemented
}
