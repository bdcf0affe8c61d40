// Package mqtttest is a raw MQTT client for tests: it writes and reads one
// packet at a time through the 03-mqtt codec, for what client libraries hide
// or refuse to do (not acknowledging, choosing packet ids and DUP flags,
// sending malformed bytes, dropping the socket without DISCONNECT), and it
// fails the test, instead of hanging, when the broker does not answer.
//
// The package builds with or without -tags floodgate.solution, but it is
// only as good as the codec under it: without the tag that is the reader's
// own 03-mqtt stub. Tests that rely on it should carry the tag, or first
// check that the codec works (as 05-broker's needParts does).
package mqtttest

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/stretchr/testify/require"
)

// DefaultTimeout bounds each read and write of a Conn whose Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Conn is one client connection, driven packet by packet. Its methods fail
// the test (require) on any error or timeout, so they must be called from
// the test's goroutine. A Conn is not safe for concurrent use.
type Conn struct {
	// NetConn is the connection. Tests may close it (a drop without
	// DISCONNECT) or set socket options on it.
	NetConn net.Conn
	// Reader reads NetConn. Its version (SetVersion) is the protocol
	// version packets are encoded and decoded with.
	Reader *mqtt.Reader
	// Timeout bounds every read and write; zero means DefaultTimeout.
	Timeout time.Duration
}

// New wraps a connection that is already open, speaking MQTT 3.1.1 until
// Reader.SetVersion says otherwise. It does not close nc.
func New(nc net.Conn, timeout time.Duration) *Conn {
	return &Conn{NetConn: nc, Reader: mqtt.NewReader(nc, mqtt.Config{Version: mqtt.V311}), Timeout: timeout}
}

// Dial connects to addr over TCP, sends nothing, and closes the connection
// when the test ends.
func Dial(t testing.TB, addr string, timeout time.Duration) *Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, orDefault(timeout))
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	return New(nc, timeout)
}

// Connect dials addr, sends cp (MQTT 3.1.1 when cp.Version is zero, which
// it then sets) and returns the CONNACK, failing the test if the first
// packet back is anything else.
func Connect(t testing.TB, addr string, cp *mqtt.Connect, timeout time.Duration) (*Conn, *mqtt.Connack) {
	t.Helper()
	c := Dial(t, addr, timeout)
	if cp.Version == 0 {
		cp.Version = mqtt.V311
	}
	c.Reader.SetVersion(cp.Version)
	c.Send(t, cp)
	p := c.Next(t)
	ack, ok := p.(*mqtt.Connack)
	require.True(t, ok, "CONNACK expected, got %T", p)
	return c, ack
}

// Send encodes p in the connection's version and writes it.
func (c *Conn) Send(t testing.TB, p mqtt.Packet) {
	t.Helper()
	buf, err := p.AppendTo(nil, c.Reader.Version())
	require.NoError(t, err)
	c.Write(t, buf)
}

// Write writes b as it is: for bytes the codec would refuse to encode.
func (c *Conn) Write(t testing.TB, b []byte) {
	t.Helper()
	_ = c.NetConn.SetWriteDeadline(time.Now().Add(orDefault(c.Timeout)))
	_, err := c.NetConn.Write(b)
	require.NoError(t, err)
}

// Next reads the next packet.
func (c *Conn) Next(t testing.TB) mqtt.Packet {
	t.Helper()
	_ = c.NetConn.SetReadDeadline(time.Now().Add(orDefault(c.Timeout)))
	p, err := c.Reader.ReadPacket()
	require.NoError(t, err)
	return p
}

// Closed reads until the broker closes the connection, passing over any
// packets, and returns the last DISCONNECT among them (nil if none). It
// fails the test if the connection is still open after the timeout, or if
// the broker sent bytes the codec cannot read (that is no close).
func (c *Conn) Closed(t testing.TB) *mqtt.Disconnect {
	t.Helper()
	var d *mqtt.Disconnect
	for {
		p, err := c.read()
		if err != nil {
			requireClosed(t, err)
			return d
		}
		if p, ok := p.(*mqtt.Disconnect); ok {
			d = p
		}
	}
}

// EOF requires that the broker closes the connection without sending
// another packet first.
func (c *Conn) EOF(t testing.TB) {
	t.Helper()
	p, err := c.read()
	require.Error(t, err, "the broker sent %v instead of closing", p)
	requireClosed(t, err)
}

// requireClosed fails the test unless err, from a read, says the peer
// closed the connection (an end of stream, within a packet or not, or a
// reset). A timeout, or a packet the codec refused, is no close.
func requireClosed(t testing.TB, err error) {
	t.Helper()
	switch {
	case isTimeout(err):
		require.FailNow(t, "the broker did not close the connection")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
	default:
		require.FailNow(t, "the broker sent what the codec cannot read, not a close", "%v", err)
	}
}

// Ping sends PINGREQ and requires PINGRESP as the very next packet: proof
// that nothing else was waiting to be sent.
func (c *Conn) Ping(t testing.TB) {
	t.Helper()
	c.Send(t, &mqtt.PingReq{})
	p := c.Next(t)
	require.IsType(t, &mqtt.PingResp{}, p, "the next packet after PINGREQ")
}

// read reads one packet within the timeout.
func (c *Conn) read() (mqtt.Packet, error) {
	_ = c.NetConn.SetReadDeadline(time.Now().Add(orDefault(c.Timeout)))
	return c.Reader.ReadPacket()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// orDefault returns d, or DefaultTimeout when d is zero.
func orDefault(d time.Duration) time.Duration {
	if d == 0 {
		return DefaultTimeout
	}
	return d
}
