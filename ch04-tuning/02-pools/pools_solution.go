//go:build floodgate.solution

package pools

import (
	"context"
	"fmt"
	"math/bits"
	"net"
)

// Get returns a buffer of length n from the smallest size class that holds
// n. For n above MaxBuffer it returns a new, unpooled buffer.
func (p *BufPool) Get(n int) *[]byte {
	if n > MaxBuffer {
		b := make([]byte, n)
		return &b
	}
	class := 0
	if n > MinBuffer {
		class = bits.Len(uint(n-1)) - bits.Len(MinBuffer-1) // ceil(log2(n)) - 9
	}
	if b, ok := p.classes[class].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, MinBuffer<<class)
	return &b
}

// Put gives b back. A buffer is kept in the largest class its capacity
// covers; one above MaxBuffer or below MinBuffer is dropped, so a rare huge
// buffer is not pinned for the small ones. b must not be used after Put.
func (p *BufPool) Put(b *[]byte) {
	c := cap(*b)
	if c < MinBuffer || c > MaxBuffer {
		p.dropped.Add(1)
		return
	}
	class := bits.Len(uint(c)) - bits.Len(MinBuffer) // floor(log2(c)) - 9
	*b = (*b)[:0]
	p.classes[class].Put(b)
}

// Get returns a Message with no topic, sender or properties and an empty
// payload (which may have capacity left from an earlier use).
func (mp *MessagePool) Get() *Message {
	if m, ok := mp.pool.Get().(*Message); ok {
		return m
	}
	return &Message{}
}

// Put resets m and keeps it for reuse. Reset drops every pointer m holds
// (topic, sender, property values) so the pool keeps nothing else alive,
// and keeps a payload buffer only up to MaxPooledPayload. m must not be
// used after Put.
func (mp *MessagePool) Put(m *Message) {
	m.Topic = ""
	m.From = nil
	clear(m.Props) // keeps the map's buckets, drops its strings
	if cap(m.Payload) > MaxPooledPayload {
		m.Payload = nil
	} else {
		m.Payload = m.Payload[:0]
	}
	mp.pool.Put(m)
}

// Get returns a connection: an idle one that passes Check, or a new one if
// fewer than MaxOpen are open. Otherwise it waits until one is put back or
// closed, ctx is done (it returns ctx's error, wrapped) or the pool is
// closed (ErrClosed).
func (p *ConnPool) Get(ctx context.Context) (net.Conn, error) {
	waited := false
	for {
		select {
		case <-p.done:
			return nil, ErrClosed
		default:
		}
		// Prefer an idle connection, then a token for a new one; wait for
		// either only when neither is free. (A select with both ready
		// picks at random, so the preference takes two.)
		select {
		case c := <-p.idle:
			if c, ok := p.healthy(c); ok {
				return c, nil
			}
			continue
		default:
		}
		select {
		case p.sem <- struct{}{}:
			return p.dial(ctx)
		default:
		}
		if !waited {
			waited = true
			p.waits.Add(1)
		}
		select {
		case c := <-p.idle:
			if c, ok := p.healthy(c); ok {
				return c, nil
			}
		case p.sem <- struct{}{}:
			return p.dial(ctx)
		case <-ctx.Done():
			return nil, fmt.Errorf("pools: get connection: %w", ctx.Err())
		case <-p.done:
			return nil, ErrClosed
		}
	}
}

// healthy checks an idle connection; a dead one is closed and its token
// given back.
func (p *ConnPool) healthy(c net.Conn) (net.Conn, bool) {
	if err := p.cfg.Check(c); err != nil {
		p.unhealthy.Add(1)
		p.discard(c)
		return nil, false
	}
	p.reused.Add(1)
	return c, true
}

// dial opens a connection for a token the caller holds.
func (p *ConnPool) dial(ctx context.Context) (net.Conn, error) {
	c, err := p.cfg.Dial(ctx)
	if err != nil {
		<-p.sem
		return nil, fmt.Errorf("pools: dial: %w", err)
	}
	p.dials.Add(1)
	return c, nil
}

// discard closes c and gives back its token.
func (p *ConnPool) discard(c net.Conn) {
	_ = c.Close()
	<-p.sem
}

// Put gives c back after use. Pass the error the last use of c returned:
// a connection that failed is closed, not reused. A healthy connection is
// kept idle if fewer than MaxIdle are, and closed otherwise.
func (p *ConnPool) Put(c net.Conn, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil || p.closed {
		p.discard(c)
		return
	}
	select {
	case p.idle <- c: // a waiting Get may take it at once
	default:
		p.discard(c) // MaxIdle are idle already
	}
}

// Close closes the idle connections and makes Get fail with ErrClosed.
// Connections in use are closed when they are put back.
func (p *ConnPool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	close(p.done)
	for {
		select {
		case c := <-p.idle:
			p.discard(c)
		default:
			return nil
		}
	}
}
