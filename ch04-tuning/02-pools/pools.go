//go:build !floodgate.solution

package pools

import (
	"context"
	"net"
)

// Get returns a buffer of length n from the smallest size class that holds
// n. For n above MaxBuffer it returns a new, unpooled buffer.
func (p *BufPool) Get(n int) *[]byte {
	// TODO: Task 1. Pick the class, take a buffer from its sync.Pool (or
	// make one of the class's full size), and set its length to n.
	return new([]byte)
}

// Put gives b back. A buffer is kept in the largest class its capacity
// covers; one above MaxBuffer or below MinBuffer is dropped, so a rare huge
// buffer is not pinned for the small ones. b must not be used after Put.
func (p *BufPool) Put(b *[]byte) {
	// TODO: Task 1.
}

// Get returns a Message with no topic, sender or properties and an empty
// payload (which may have capacity left from an earlier use).
func (mp *MessagePool) Get() *Message {
	// TODO: Task 2.
	return &Message{}
}

// Put resets m and keeps it for reuse. Reset drops every pointer m holds
// (topic, sender, property values) so the pool keeps nothing else alive,
// and keeps a payload buffer only up to MaxPooledPayload. m must not be
// used after Put.
func (mp *MessagePool) Put(m *Message) {
	// TODO: Task 2.
}

// Get returns a connection: an idle one that passes Check, or a new one if
// fewer than MaxOpen are open. Otherwise it waits until one is put back or
// closed, ctx is done (it returns ctx's error, wrapped) or the pool is
// closed (ErrClosed).
func (p *ConnPool) Get(ctx context.Context) (net.Conn, error) {
	// TODO: Task 3.
	return nil, ErrClosed
}

// Put gives c back after use. Pass the error the last use of c returned:
// a connection that failed is closed, not reused. A healthy connection is
// kept idle if fewer than MaxIdle are, and closed otherwise.
func (p *ConnPool) Put(c net.Conn, err error) {
	// TODO: Task 3.
}

// Close closes the idle connections and makes Get fail with ErrClosed.
// Connections in use are closed when they are put back.
func (p *ConnPool) Close() error {
	// TODO: Task 3.
	return nil
}
