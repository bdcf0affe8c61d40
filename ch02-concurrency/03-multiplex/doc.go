// Package multiplex is about Go's select statement: waiting on several
// channels and timers at once. It builds the time-driven parts of a device
// session: a keepalive watchdog that gives a silent device one and a half
// times its keepalive before it gives up (as MQTT does), a device-side
// heartbeat that pings only when the device has been idle, a loop that
// always serves control packets before data, and a session that ties them
// together and stops through its context.
package multiplex

import (
	"errors"
	"fmt"
	"time"
)

// Kind is the type of a packet, loosely modelled on MQTT's control packets.
type Kind uint8

const (
	Publish    Kind = iota + 1 // a device reading
	PingReq                    // heartbeat from the device
	PingResp                   // the server's answer to PingReq
	Disconnect                 // a control packet: the server asks the device to go
	Throttle                   // a control packet: slow down
)

// String returns the packet kind's name.
func (k Kind) String() string {
	switch k {
	case Publish:
		return "PUBLISH"
	case PingReq:
		return "PINGREQ"
	case PingResp:
		return "PINGRESP"
	case Disconnect:
		return "DISCONNECT"
	case Throttle:
		return "THROTTLE"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Packet is one message between a device and the server.
type Packet struct {
	Kind Kind
	Seq  uint64
}

// ErrKeepAliveExpired is returned when a device stayed silent for longer
// than its grace period.
var ErrKeepAliveExpired = errors.New("multiplex: keepalive expired")

// Grace is how long the server waits for a packet from a device whose
// keepalive is keepAlive: one and a half times the keepalive. MQTT 3.1.1
// says the same of its Keep Alive ([MQTT-3.1.2-24]). A keepAlive of zero
// turns the watchdog off, and so does Grace: it returns zero.
func Grace(keepAlive time.Duration) time.Duration {
	return keepAlive + keepAlive/2
}
