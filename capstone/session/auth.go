package session

import (
	"errors"

	"floodgate/capstone/admission"
	mqtt "floodgate/ch03-networking/03-mqtt"
)

// Extended authentication (MQTT 5.0 section 4.12): a CONNECT that names an
// Authentication Method starts an exchange of AUTH packets before the
// CONNACK, and on a live connection the client may start another
// (re-authentication, section 4.12.1). The method itself, SCRAM-SHA-256
// and its users, is floodgate/capstone/admission's (scram.go); this file is
// the MQTT flow that carries it:
//
//	CONNECT  method, client-first  ->
//	                               <-  AUTH 0x18 method, server-first
//	AUTH 0x18 method, client-final ->
//	                               <-  CONNACK 0x00 method, server-final
//
// and after CONNACK, AUTH 0x19 (client-first), AUTH 0x18 (server-first),
// AUTH 0x18 (client-final), AUTH 0x00 (server-final).
//
// Before the CONNACK the exchange runs where the CONNECT ran, so both
// engines keep their shape: the goroutine engine's connect reads the next
// packet itself; an event loop gets ErrAuthContinue from Connect and calls
// it again with the next packet.

// ErrAuthContinue is returned by Connect when the packet began or continued
// an extended authentication: the Conn is not connected yet and has an
// AUTH for Output to write. Read the client's next packet as the CONNECT
// was read, within the same deadline, and call Connect with it.
var ErrAuthContinue = errors.New("session: extended authentication continues")

// ReasonAuthFailed names a connection closed because its re-authentication
// failed (DISCONNECT 0x87).
const ReasonAuthFailed = "auth_failed"

// extAuth is a connection's extended authentication. The reader (or the
// driven Conn's Connect and Feed) alone uses it.
type extAuth struct {
	method string              // the Authentication Method of the CONNECT
	user   string              // the user the exchange authenticated
	ex     *admission.Exchange // the exchange in progress; nil: none
	cp     *mqtt.Connect       // the CONNECT, until its CONNACK; nil after
}

// connectStep handles a packet before the CONNACK: the CONNECT, or the
// next packet of an extended authentication it began.
func (c *Conn) connectStep(h mqtt.FixedHeader, body []byte) error {
	if c.ext != nil && c.ext.cp != nil {
		return c.continueAuth(h, body)
	}
	return c.connectPacket(h, body)
}

// startAuth begins the exchange the CONNECT cp asks for.
func (c *Conn) startAuth(cp *mqtt.Connect) error {
	method := cp.Properties.AuthMethod
	ex, code := c.cfg.Admission.StartAuth(method)
	if code != mqtt.Success {
		// [MQTT-4.12.0-1] a method the server does not support: CONNACK
		// 0x8C, and the connection closes.
		return c.refuseConnect(code, "auth_method")
	}
	reply, done, err := ex.Step(cp.Properties.AuthData)
	if err != nil {
		// [MQTT-4.12.0-4] the server may reject the authentication at any
		// point: CONNACK 0x87, and the connection closes.
		return c.refuseConnect(mqtt.NotAuthorized, "auth_failed")
	}
	c.ext = &extAuth{method: method, ex: ex, cp: cp}
	if done {
		return c.authenticated(reply)
	}
	// [MQTT-4.12.0-2] the server asks for more with AUTH 0x18, which
	// [MQTT-4.12.0-5] names the CONNECT's method.
	c.writeNow(c.authPacket(mqtt.ContinueAuthentication, reply), mqtt.V5)
	return ErrAuthContinue
}

// continueAuth handles the client's packet in an exchange before CONNACK.
func (c *Conn) continueAuth(h mqtt.FixedHeader, body []byte) error {
	if h.Type == mqtt.DISCONNECT {
		return closeWith(0, ReasonNormal) // the client gave up
	}
	if h.Type != mqtt.AUTH {
		// [MQTT-3.1.2-30] a client that named a method sends only AUTH or
		// DISCONNECT until its CONNACK.
		return c.refuseConnect(mqtt.ProtocolError, "auth_protocol")
	}
	p := new(mqtt.Auth)
	if err := p.Decode(h, body, mqtt.V5); err != nil {
		return c.refuseConnect(mqtt.CodeOf(err), "auth_protocol")
	}
	if p.ReasonCode != mqtt.ContinueAuthentication || p.Properties.AuthMethod != c.ext.method {
		// [MQTT-4.12.0-3] the client answers AUTH 0x18 with AUTH 0x18,
		// and [MQTT-4.12.0-5] every AUTH names the CONNECT's method.
		return c.refuseConnect(mqtt.ProtocolError, "auth_protocol")
	}
	reply, done, err := c.ext.ex.Step(p.Properties.AuthData)
	if err != nil {
		return c.refuseConnect(mqtt.NotAuthorized, "auth_failed") // [MQTT-4.12.0-4]
	}
	if !done {
		c.writeNow(c.authPacket(mqtt.ContinueAuthentication, reply), mqtt.V5) // [MQTT-4.12.0-2]
		return ErrAuthContinue
	}
	return c.authenticated(reply)
}

// authenticated finishes the CONNECT once its exchange succeeded: the
// CONNACK carries the method and the server's last data.
func (c *Conn) authenticated(reply []byte) error {
	cp, ex := c.ext.cp, c.ext.ex
	c.ext.user, c.ext.ex, c.ext.cp = ex.User(), nil, nil
	if cp.HasUsername && !ex.Confirm(cp.Username) {
		// The CONNECT's User Name, if any, must be the user proved.
		return c.refuseConnect(mqtt.NotAuthorized, "auth_failed")
	}
	ack := &mqtt.Connack{}
	// [MQTT-4.12.0-5] a successful CONNACK names the CONNECT's method.
	ack.Properties.AuthMethod, ack.Properties.AuthData = c.ext.method, reply
	return c.accept(cp, ack)
}

// reauth handles an AUTH after CONNACK.
func (c *Conn) reauth(p *mqtt.Auth) error {
	if c.ext == nil {
		// [MQTT-4.12.0-7] a client that named no method sends no AUTH.
		return closeWith(mqtt.ProtocolError, ReasonProtocol)
	}
	if p.Properties.AuthMethod != c.ext.method {
		// [MQTT-4.12.1-1] re-authentication uses the CONNECT's method.
		return closeWith(mqtt.ProtocolError, ReasonProtocol)
	}
	fail := func() error {
		// [MQTT-4.12.1-2] a failed re-authentication: DISCONNECT 0x87,
		// and the connection closes.
		c.ext.ex = nil
		return closeWith(mqtt.NotAuthorized, ReasonAuthFailed)
	}
	switch {
	case p.ReasonCode == mqtt.ReAuthenticate && c.ext.ex == nil:
		// [MQTT-4.12.1-1] the client starts a re-authentication with AUTH
		// 0x19; packets keep flowing under the old one meanwhile.
		ex, code := c.cfg.Admission.StartReauth(c.ext.method)
		if code != mqtt.Success {
			return fail()
		}
		reply, done, err := ex.Step(p.Properties.AuthData)
		if err != nil || !ex.Confirm(c.ext.user) {
			// A connection stays the user it proved to be.
			return fail()
		}
		if done {
			c.send(c.authPacket(mqtt.Success, reply))
			return nil
		}
		c.ext.ex = ex
		c.send(c.authPacket(mqtt.ContinueAuthentication, reply)) // [MQTT-4.12.0-2] [MQTT-4.12.0-5]
	case p.ReasonCode == mqtt.ContinueAuthentication && c.ext.ex != nil:
		reply, done, err := c.ext.ex.Step(p.Properties.AuthData) // [MQTT-4.12.0-3]
		if err != nil {
			return fail()
		}
		if done {
			// MQTT 5.0 section 4.12.1: AUTH 0x00 ends a successful
			// re-authentication.
			c.ext.ex = nil
			c.send(c.authPacket(mqtt.Success, reply))
			return nil
		}
		c.send(c.authPacket(mqtt.ContinueAuthentication, reply))
	default:
		// 0x19 during an exchange, 0x18 outside one, 0x00 from a client.
		return closeWith(mqtt.ProtocolError, ReasonProtocol)
	}
	return nil
}

// authPacket is an AUTH with code and the server's data, naming the
// connection's method [MQTT-4.12.0-5].
func (c *Conn) authPacket(code mqtt.ReasonCode, data []byte) *mqtt.Auth {
	a := &mqtt.Auth{ReasonCode: code}
	a.Properties.AuthMethod, a.Properties.AuthData = c.ext.method, data
	return a
}
