//go:build floodgate.solution

package ingest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"syscall"
	"time"
)

// ParseLine parses one line of the protocol, without its line ending:
//
//	device_id,metric,value[,unix_ms]
//
// device_id and metric are 1 to MaxIDBytes bytes of [A-Za-z0-9_.:-]; value
// is a finite number as strconv.ParseFloat reads it; unix_ms, when present, is a non-negative count
// of milliseconds since 1970. Every error wraps ErrMalformed and names the
// field at fault.
func ParseLine(line []byte) (Reading, error) {
	var f [4][]byte
	n := 0
	for rest := line; ; n++ {
		if n == len(f) {
			return Reading{}, fmt.Errorf("%w: more than 4 comma-separated fields", ErrMalformed)
		}
		field, tail, more := bytes.Cut(rest, []byte{','})
		f[n] = field
		if !more {
			n++
			break
		}
		rest = tail
	}
	if n < 3 {
		return Reading{}, fmt.Errorf("%w: want device_id,metric,value[,unix_ms], got %d field(s)", ErrMalformed, n)
	}
	if err := checkName("device_id", f[0]); err != nil {
		return Reading{}, err
	}
	if err := checkName("metric", f[1]); err != nil {
		return Reading{}, err
	}
	v, err := strconv.ParseFloat(string(f[2]), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return Reading{}, fmt.Errorf("%w: value %q is not a finite number", ErrMalformed, f[2])
	}
	r := Reading{DeviceID: string(f[0]), Metric: string(f[1]), Value: v}
	if n == 4 {
		ms, err := strconv.ParseInt(string(f[3]), 10, 64)
		if err != nil || ms < 0 {
			return Reading{}, fmt.Errorf("%w: unix_ms %q is not a non-negative integer", ErrMalformed, f[3])
		}
		r.Time = time.UnixMilli(ms).UTC()
	}
	return r, nil
}

func checkName(field string, b []byte) error {
	if len(b) == 0 || len(b) > MaxIDBytes {
		return fmt.Errorf("%w: %s must be 1 to %d bytes, got %d", ErrMalformed, field, MaxIDBytes, len(b))
	}
	for _, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '.' || c == ':' || c == '-'
		if !ok {
			return fmt.Errorf("%w: %s %q has a byte outside [A-Za-z0-9_.:-]", ErrMalformed, field, b)
		}
	}
	return nil
}

// serve reads lines from a tracked connection until it ends, then untracks
// it. A line longer than Config.MaxLineBytes closes the connection, after
// telling the peer why; a malformed line is counted and skipped.
func (s *Server) serve(c net.Conn) {
	defer s.untrack(c)
	br := bufio.NewReaderSize(c, s.cfg.MaxLineBytes)
	for {
		// Order matters: set the idle deadline, then look at closing. If
		// Shutdown began in between, its deadline of "now" came after ours.
		c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		if s.closing.Load() {
			c.SetReadDeadline(time.Now())
		}
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			s.oversized.Add(1)
			s.log.Info("closing connection", "remote", c.RemoteAddr(), "reason", ErrLineTooLong)
			c.SetWriteDeadline(time.Now().Add(time.Second)) // a peer that does not read must not hold us
			fmt.Fprintf(c, "ERR %v: a line may have at most %d bytes\n", ErrLineTooLong, s.cfg.MaxLineBytes)
			return
		}
		if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
			if !errors.Is(err, io.EOF) && !s.closing.Load() {
				s.log.Info("closing connection", "remote", c.RemoteAddr(), "reason", err)
			}
			return // EOF, idle timeout, shutdown, or a broken connection
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte{'\n'}), []byte{'\r'})
		if r, perr := ParseLine(line); perr != nil {
			s.malformed.Add(1)
		} else {
			s.record(r)
		}
		if err != nil {
			return // the last line had no newline, then EOF
		}
	}
}

// Serve accepts connections on ln and serves each in its own goroutine until
// Shutdown, when it returns ErrServerClosed. A temporary Accept error (out
// of file descriptors, say) is retried after a back-off that starts at 5 ms,
// doubles, and stops growing at Config.MaxAcceptBackoff; any other error is
// returned. Serve does not close connections on return: Shutdown does.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if !temporary(err) {
				return fmt.Errorf("ingest: accept: %w", err)
			}
			delay = min(max(2*delay, 5*time.Millisecond), s.cfg.MaxAcceptBackoff)
			s.acceptRetry.Add(1)
			s.log.Warn("accept failed; retrying", "err", err, "in", delay)
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
		s.accepted.Add(1)
		if !s.track(c) {
			c.Close()
			return ErrServerClosed
		}
		go s.serve(c)
	}
}

// temporary reports whether an Accept error is worth retrying: the process
// or the system is out of descriptors or memory, or a connection was aborted
// before we took it.
func temporary(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// Shutdown stops the server: it closes the listeners, lets every connection
// finish the lines it has already read, and waits for the connection
// goroutines to end. If ctx ends first, it closes the remaining connections,
// waits for their goroutines, and returns ctx's error. Config.Handle must
// return for Shutdown to return.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing.Swap(true) {
		close(s.done)
	}
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.SetReadDeadline(time.Now()) // wakes a blocked read; buffered lines are still handled
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
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-finished
		return ctx.Err()
	}
}
