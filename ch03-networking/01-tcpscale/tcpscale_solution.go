//go:build floodgate.solution

package tcpscale

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
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
	if !s.trackListener(l) {
		l.Close()
		return ErrServerClosed
	}
	defer s.wg.Done() // the count trackListener added
	defer s.untrackListener(l)

	var delay time.Duration // current back-off; zero after a success
	for {
		c, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			if !IsTemporary(err) {
				return fmt.Errorf("accept: %w", err)
			}
			delay = nextBackoff(delay, s.cfg.BackoffMin, s.cfg.BackoffMax)
			s.acceptErrors.Add(1)
			s.log.Warn("accept: temporary error, backing off", "err", err, "delay", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return ErrServerClosed
			}
			continue
		}
		delay = 0
		if !s.trackConn(c) {
			continue // rejected or shutting down; trackConn closed c
		}
		go s.handle(c) // trackConn did wg.Add(1)
	}
}

// nextBackoff returns the pause after one more temporary error, given the
// previous pause (zero if the last Accept succeeded).
func nextBackoff(prev, lo, hi time.Duration) time.Duration {
	if prev == 0 {
		return lo
	}
	return min(2*prev, hi)
}

// trackListener records l so Shutdown can close it. It returns false if the
// server is already shut down.
func (s *Server) trackListener(l net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.listeners[l] = struct{}{}
	s.wg.Add(1) // Serve's own count, so Shutdown waits for it
	return true
}

func (s *Server) untrackListener(l net.Listener) {
	s.mu.Lock()
	delete(s.listeners, l)
	s.mu.Unlock()
	l.Close()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// trackConn admits c under the cap. It returns false, having closed c, if
// the server is at MaxConns or shut down. On true it has added c to the set
// and one count to wg, and the caller must start handle(c).
func (s *Server) trackConn(c net.Conn) bool {
	s.mu.Lock()
	if s.closed || len(s.conns) >= s.cfg.MaxConns {
		closed := s.closed
		s.mu.Unlock()
		c.Close()
		if !closed {
			s.rejected.Add(1)
			s.log.Warn("connection rejected at the cap", "remote", c.RemoteAddr(), "max", s.cfg.MaxConns)
		}
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.accepted.Add(1)
	s.active.Add(1)
	return true
}

// handle echoes what c sends until c closes, fails, or stays silent for
// IdleTimeout. It owns c and closes it.
func (s *Server) handle(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
		s.active.Add(-1)
	}()
	buf := make([]byte, s.cfg.ReadBufferSize)
	for {
		if err := c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout)); err != nil {
			return
		}
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && !s.isClosed() {
				s.idleClosed.Add(1)
			}
			return
		}
	}
}

// Shutdown stops every Serve loop, closes every open connection and waits
// for all the server's goroutines to return. If ctx ends first, Shutdown
// returns ctx's error wrapped with "shutdown"; the goroutines still end on
// their own, since their connections are closed. Calling Shutdown more than
// once is safe.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()

	finished := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shutdown: %w", ctx.Err())
	}
}
