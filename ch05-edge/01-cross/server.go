package cross

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"sync"
)

// The line protocol that edged speaks. Each request is one line ending in
// '\n'; each gets exactly one reply line:
//
//	PING                      -> PONG linux/arm64   (the binary's own GOOS/GOARCH)
//	<device> <metric> <value> -> OK <n>             (n readings accepted on this connection)
//	anything malformed        -> ERR <reason>       (the connection stays open)
//
// A line longer than MaxLine bytes gets "ERR line too long" and the
// connection is closed, since the rest of it cannot be framed.

// MaxLine is the longest request line, without its '\n', that Server reads.
const MaxLine = 256

// Reading is one measurement line.
type Reading struct {
	Device string
	Metric string
	Value  float64
}

// Errors of ParseReading.
var (
	ErrFields = errors.New("want 3 fields: device metric value")
	ErrValue  = errors.New("value is not a finite number")
)

// ParseReading parses "<device> <metric> <value>" (fields separated by
// single or repeated spaces). It never panics on any input.
func ParseReading(line []byte) (Reading, error) {
	f := bytes.Fields(line)
	if len(f) != 3 {
		return Reading{}, ErrFields
	}
	v, err := strconv.ParseFloat(string(f[2]), 64)
	if err != nil || v != v || v > 1e308 || v < -1e308 {
		return Reading{}, ErrValue
	}
	return Reading{Device: string(f[0]), Metric: string(f[1]), Value: v}, nil
}

// Server serves the line protocol. Its zero value works: it reports the
// running binary's runtime.GOOS/runtime.GOARCH. A Server must not be
// copied after Serve is first called.
type Server struct {
	mu    sync.Mutex            // guards conns
	conns map[net.Conn]struct{} // open connections, closed when Serve's ctx ends
	wg    sync.WaitGroup        // one per connection goroutine
}

// Serve accepts connections on ln until ctx is done, then closes ln and
// every open connection and waits for their goroutines. It returns nil
// after ctx ends, or the error that stopped Accept.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	defer stop()
	defer s.wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("edged accept: %w", err)
		}
		s.mu.Lock()
		if ctx.Err() != nil { // the AfterFunc may have run already
			s.mu.Unlock()
			c.Close()
			return nil
		}
		if s.conns == nil {
			s.conns = make(map[net.Conn]struct{})
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

func (s *Server) handle(c net.Conn) {
	arch := runtime.GOOS + "/" + runtime.GOARCH
	r := bufio.NewReaderSize(c, MaxLine+1)
	w := bufio.NewWriter(c)
	n := 0
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			w.WriteString("ERR line too long\n")
			w.Flush()
			return
		}
		if err != nil {
			return // EOF or closed: nothing to answer
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case string(line) == "PING":
			w.WriteString("PONG " + arch + "\n")
		default:
			if _, perr := ParseReading(line); perr != nil {
				w.WriteString("ERR " + perr.Error() + "\n")
			} else {
				n++
				w.WriteString("OK " + strconv.Itoa(n) + "\n")
			}
		}
		// Flush only when no further request is buffered: pipelined
		// requests get their replies in one write.
		if r.Buffered() == 0 {
			if w.Flush() != nil {
				return
			}
		}
	}
}
