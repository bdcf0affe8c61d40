//go:build floodgate.solution

package broker

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"floodgate/capstone/admission"
	"floodgate/capstone/ops"
	"floodgate/capstone/session"
	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xdg-go/scram"
)

// Extended authentication (MQTT 5.0 section 4.12) with SCRAM-SHA-256: the
// exchange before CONNACK, re-authentication, and every way to get it
// wrong, driven by a raw client and by paho.golang's Auther.

const scramMethod = admission.MethodSCRAMSHA256

// scramUsers is a users file with alice (password "wonderland") and bob
// ("builder").
func scramUsers(t *testing.T) *admission.SCRAMUsers {
	t.Helper()
	var lines []string
	for _, up := range [][2]string{{"alice", "wonderland"}, {"bob", "builder"}} {
		l, err := admission.HashSCRAM(up[0], up[1], 0)
		require.NoError(t, err)
		lines = append(lines, l)
	}
	u, err := admission.ParseSCRAMUsers(strings.NewReader(strings.Join(lines, "\n")))
	require.NoError(t, err)
	return u
}

func scramBroker(t *testing.T, scfg session.Config) (*Broker, string) {
	t.Helper()
	return startBroker(t, Config{Session: scfg, Admission: admission.Config{SCRAM: scramUsers(t)}})
}

// scramConv starts a client conversation and returns it with its first
// message.
func scramConv(t *testing.T, user, password string) (*scram.ClientConversation, []byte) {
	t.Helper()
	client, err := scram.SHA256.NewClient(user, password, "")
	require.NoError(t, err)
	conv := client.NewConversation()
	first, err := conv.Step("")
	require.NoError(t, err)
	return conv, []byte(first)
}

func step(t *testing.T, conv *scram.ClientConversation, in []byte) []byte {
	t.Helper()
	out, err := conv.Step(string(in))
	require.NoError(t, err)
	return []byte(out)
}

func authPkt(code mqtt.ReasonCode, method string, data []byte) *mqtt.Auth {
	a := &mqtt.Auth{ReasonCode: code}
	a.Properties.AuthMethod, a.Properties.AuthData = method, data
	return a
}

// scramStart dials, sends a CONNECT naming SCRAM-SHA-256 with the
// client-first message, and returns the server's answer.
func scramStart(t *testing.T, addr, id, user, password string) (*raw, *scram.ClientConversation, mqtt.Packet) {
	t.Helper()
	conv, first := scramConv(t, user, password)
	c := dialRaw(t, addr)
	c.r.SetVersion(mqtt.V5)
	cp := &mqtt.Connect{Version: mqtt.V5, ClientID: id, CleanStart: true}
	cp.Properties.AuthMethod, cp.Properties.AuthData = scramMethod, first
	c.send(t, cp)
	return c, conv, c.next(t)
}

// scramConnect runs the whole exchange and returns the CONNACK.
func scramConnect(t *testing.T, addr, id, user, password string) (*raw, *scram.ClientConversation, *mqtt.Connack) {
	t.Helper()
	c, conv, p := scramStart(t, addr, id, user, password)
	a, ok := p.(*mqtt.Auth)
	require.True(t, ok, "AUTH expected, got %T", p)
	c.send(t, authPkt(mqtt.ContinueAuthentication, scramMethod, step(t, conv, a.Properties.AuthData)))
	ack, ok := c.next(t).(*mqtt.Connack)
	require.True(t, ok, "CONNACK expected")
	return c, conv, ack
}

// [MQTT-4.12.0-2] [MQTT-4.12.0-5] The exchange: CONNECT, AUTH 0x18 naming
// the method, AUTH 0x18, CONNACK 0x00 naming the method with the server's
// final message, which proves the server knows the user's key. The
// connection then works.
func TestAuth_SCRAMConnect(t *testing.T) {
	_, addr := scramBroker(t, session.Config{})
	c, conv, p := scramStart(t, addr, "sc", "alice", "wonderland")
	a, ok := p.(*mqtt.Auth)
	require.True(t, ok, "AUTH expected, got %T", p)
	assert.Equal(t, mqtt.ContinueAuthentication, a.ReasonCode) // [MQTT-4.12.0-2]
	assert.Equal(t, scramMethod, a.Properties.AuthMethod)      // [MQTT-4.12.0-5]
	assert.True(t, strings.HasPrefix(string(a.Properties.AuthData), "r="), "server-first message")
	c.send(t, authPkt(mqtt.ContinueAuthentication, scramMethod, step(t, conv, a.Properties.AuthData)))
	ack, ok := c.next(t).(*mqtt.Connack)
	require.True(t, ok, "CONNACK expected")
	require.Equal(t, mqtt.Success, ack.ReasonCode)
	assert.Equal(t, scramMethod, ack.Properties.AuthMethod) // [MQTT-4.12.0-5]
	step(t, conv, ack.Properties.AuthData)
	assert.True(t, conv.Valid(), "the server's signature verifies")

	c.send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "s/t"}}})
	require.IsType(t, &mqtt.SubAck{}, c.next(t))
	c.send(t, &mqtt.Publish{Topic: []byte("s/t"), Payload: []byte("hi")})
	assert.Equal(t, "hi", string(c.next(t).(*mqtt.Publish).Payload))
}

// [MQTT-4.12.0-4] A wrong password (or an unknown user, who looks like a
// known one until the proof) is rejected with CONNACK 0x87, and the
// connection closes.
func TestAuth_SCRAMWrongPassword(t *testing.T) {
	m := ops.NewMetrics()
	b, addr := startBroker(t, Config{Admission: admission.Config{SCRAM: scramUsers(t)}, Metrics: m})
	for i, up := range [][2]string{{"alice", "looking-glass"}, {"mallory", "wonderland"}} {
		c, _, ack := scramConnect(t, addr, "wp", up[0], up[1])
		assert.Equal(t, mqtt.NotAuthorized, ack.ReasonCode, up[0])
		assert.Empty(t, ack.Properties.AuthData, "no server proof on a failure")
		assert.Nil(t, c.closed(t))
		assert.Equal(t, uint64(i+1), counter(b, "refused_auth_failed"))
		assert.Equal(t, float64(i+1), testutil.ToFloat64(m.ConnectionsRefused.WithLabelValues(ops.RefuseAuth)))
	}
}

// [MQTT-4.12.0-1] A method the server does not support: CONNACK 0x8C and
// the connection closes; also SCRAM-SHA-256 itself when no SCRAM users
// are configured.
func TestAuth_UnsupportedMethod(t *testing.T) {
	b, addr := scramBroker(t, session.Config{})
	_, plain := startBroker(t, Config{})
	for _, tc := range []struct{ addr, method string }{{addr, "SCRAM-SHA-1"}, {addr, "GS2-KRB5"}, {plain, scramMethod}} {
		cp := &mqtt.Connect{Version: mqtt.V5, ClientID: "m", CleanStart: true}
		cp.Properties.AuthMethod = tc.method
		c, ack := connectRaw(t, tc.addr, cp)
		assert.Equal(t, mqtt.BadAuthenticationMethod, ack.ReasonCode, tc.method)
		assert.Nil(t, c.closed(t))
	}
	assert.Equal(t, uint64(2), counter(b, "refused_auth_method"))
}

// [MQTT-4.12.0-6] A client that names no method gets no AUTH and no method
// in its CONNACK; with SCRAM users and no password file it is not
// authorized at all.
func TestAuth_NoMethod(t *testing.T) {
	_, plain := startBroker(t, Config{})
	_, ack := connectRaw(t, plain, &mqtt.Connect{Version: mqtt.V5, ClientID: "n", CleanStart: true})
	assert.Equal(t, mqtt.Success, ack.ReasonCode)
	assert.Empty(t, ack.Properties.AuthMethod)
	assert.Empty(t, ack.Properties.AuthData)

	_, addr := scramBroker(t, session.Config{})
	c, ack := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "n", CleanStart: true})
	assert.Equal(t, mqtt.NotAuthorized, ack.ReasonCode)
	assert.Empty(t, ack.Properties.AuthMethod)
	assert.Nil(t, c.closed(t))
}

// [MQTT-4.12.0-7] AUTH from a client that named no method is a protocol
// error: DISCONNECT 0x82.
func TestAuth_AuthWithoutMethod(t *testing.T) {
	b, addr := startBroker(t, Config{})
	for _, code := range []mqtt.ReasonCode{mqtt.ReAuthenticate, mqtt.ContinueAuthentication} {
		c, _ := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "x", CleanStart: true})
		c.send(t, authPkt(code, scramMethod, []byte("n,,n=alice,r=abc")))
		d := c.closed(t)
		require.NotNil(t, d)
		assert.Equal(t, mqtt.ProtocolError, d.ReasonCode)
	}
	assert.Equal(t, uint64(2), counter(b, "disconnect_protocol_error"))
}

// During the exchange before CONNACK: [MQTT-3.1.2-30] only AUTH or
// DISCONNECT; [MQTT-4.12.0-3] the client answers with AUTH 0x18;
// [MQTT-4.12.0-5] naming the same method. Anything else: CONNACK 0x82.
func TestAuth_ExchangeProtocolErrors(t *testing.T) {
	b, addr := scramBroker(t, session.Config{})
	for name, bad := range map[string]mqtt.Packet{
		"PUBLISH before CONNACK": &mqtt.Publish{Topic: []byte("t"), Payload: []byte("x")},
		"PINGREQ before CONNACK": &mqtt.PingReq{},
		"AUTH 0x19":              authPkt(mqtt.ReAuthenticate, scramMethod, []byte("c=biws")),
		"AUTH 0x00":              authPkt(mqtt.Success, scramMethod, nil),
		"AUTH another method":    authPkt(mqtt.ContinueAuthentication, "SCRAM-SHA-1", []byte("c=biws")),
	} {
		c, _, p := scramStart(t, addr, "pe", "alice", "wonderland")
		require.IsType(t, &mqtt.Auth{}, p, name)
		c.send(t, bad)
		ack, ok := c.next(t).(*mqtt.Connack)
		require.True(t, ok, name)
		assert.Equal(t, mqtt.ProtocolError, ack.ReasonCode, name)
		assert.Nil(t, c.closed(t), name)
	}
	assert.Equal(t, uint64(5), counter(b, "refused_auth_protocol"))

	// A client that gives up with DISCONNECT is simply closed.
	c, _, p := scramStart(t, addr, "pe", "alice", "wonderland")
	require.IsType(t, &mqtt.Auth{}, p)
	c.send(t, &mqtt.Disconnect{})
	assert.Nil(t, c.closed(t))
}

// The CONNECT's deadline covers the whole exchange: a client that never
// answers the AUTH is closed (slowloris).
func TestAuth_ExchangeDeadline(t *testing.T) {
	b, addr := scramBroker(t, session.Config{ConnectTimeout: 500 * time.Millisecond})
	c, _, p := scramStart(t, addr, "slow", "alice", "wonderland")
	require.IsType(t, &mqtt.Auth{}, p)
	assert.Nil(t, c.closed(t))
	assert.Equal(t, uint64(1), counter(b, "disconnect_connect_timeout"))
}

// The CONNECT's User Name, if any, must be the user the exchange proved.
func TestAuth_UserNameMustMatch(t *testing.T) {
	_, addr := scramBroker(t, session.Config{})
	conv, first := scramConv(t, "alice", "wonderland")
	c := dialRaw(t, addr)
	c.r.SetVersion(mqtt.V5)
	cp := &mqtt.Connect{Version: mqtt.V5, ClientID: "um", CleanStart: true, Username: "bob", HasUsername: true}
	cp.Properties.AuthMethod, cp.Properties.AuthData = scramMethod, first
	c.send(t, cp)
	a := c.next(t).(*mqtt.Auth)
	c.send(t, authPkt(mqtt.ContinueAuthentication, scramMethod, step(t, conv, a.Properties.AuthData)))
	assert.Equal(t, mqtt.NotAuthorized, c.next(t).(*mqtt.Connack).ReasonCode)
}

// reauth runs a re-authentication on c and returns the server's last
// packet.
func reauth(t *testing.T, c *raw, method, user, password string) mqtt.Packet {
	t.Helper()
	conv, first := scramConv(t, user, password)
	c.send(t, authPkt(mqtt.ReAuthenticate, method, first))
	p := c.next(t)
	a, ok := p.(*mqtt.Auth)
	if !ok {
		return p
	}
	require.Equal(t, mqtt.ContinueAuthentication, a.ReasonCode)
	require.Equal(t, scramMethod, a.Properties.AuthMethod) // [MQTT-4.12.0-5]
	c.send(t, authPkt(mqtt.ContinueAuthentication, method, step(t, conv, a.Properties.AuthData)))
	p = c.next(t)
	if a, ok := p.(*mqtt.Auth); ok && a.ReasonCode == mqtt.Success {
		assert.Equal(t, scramMethod, a.Properties.AuthMethod)
		step(t, conv, a.Properties.AuthData)
		assert.True(t, conv.Valid(), "the server's signature verifies")
	}
	return p
}

// [MQTT-4.12.1-1] Re-authentication: AUTH 0x19 with the same method, then
// AUTH 0x18 both ways, and AUTH 0x00 with the server's proof; the
// connection goes on, and may do it again.
func TestAuth_Reauthenticate(t *testing.T) {
	_, addr := scramBroker(t, session.Config{})
	c, _, ack := scramConnect(t, addr, "re", "alice", "wonderland")
	require.Equal(t, mqtt.Success, ack.ReasonCode)
	for range 2 {
		p := reauth(t, c, scramMethod, "alice", "wonderland")
		a, ok := p.(*mqtt.Auth)
		require.True(t, ok, "AUTH expected, got %T", p)
		assert.Equal(t, mqtt.Success, a.ReasonCode)
	}
	c.send(t, &mqtt.PingReq{})
	require.IsType(t, &mqtt.PingResp{}, c.next(t))
}

// [MQTT-4.12.1-2] A failed re-authentication (a wrong password, or another
// user's good one) ends the connection with DISCONNECT 0x87;
// [MQTT-4.12.1-1] one with another method, or out of turn, is a protocol
// error (0x82).
func TestAuth_ReauthenticateFails(t *testing.T) {
	b, addr := scramBroker(t, session.Config{})
	for _, tc := range []struct {
		user, password string
	}{{"alice", "wrong"}, {"bob", "builder"}} {
		c, _, ack := scramConnect(t, addr, "rf", "alice", "wonderland")
		require.Equal(t, mqtt.Success, ack.ReasonCode)
		p := reauth(t, c, scramMethod, tc.user, tc.password)
		d, ok := p.(*mqtt.Disconnect)
		require.True(t, ok, "%s: DISCONNECT expected, got %T", tc.user, p)
		assert.Equal(t, mqtt.NotAuthorized, d.ReasonCode)
		assert.Nil(t, c.closed(t))
	}
	assert.Equal(t, uint64(2), counter(b, "disconnect_"+session.ReasonAuthFailed))

	for name, bad := range map[string]*mqtt.Auth{
		"another method":    authPkt(mqtt.ReAuthenticate, "SCRAM-SHA-1", []byte("n,,n=alice,r=abc")),
		"0x18 out of turn":  authPkt(mqtt.ContinueAuthentication, scramMethod, []byte("c=biws")),
		"0x00 from clients": authPkt(mqtt.Success, scramMethod, nil),
	} {
		c, _, ack := scramConnect(t, addr, "rf", "alice", "wonderland")
		require.Equal(t, mqtt.Success, ack.ReasonCode)
		c.send(t, bad)
		d := c.closed(t)
		require.NotNil(t, d, name)
		assert.Equal(t, mqtt.ProtocolError, d.ReasonCode, name)
	}
}

// scramAuther is paho.golang's Auther for SCRAM-SHA-256: it answers each
// AUTH 0x18 with the next step of its conversation.
type scramAuther struct {
	t    *testing.T
	mu   sync.Mutex
	conv *scram.ClientConversation
}

func (a *scramAuther) start(user, password string) []byte {
	conv, first := scramConv(a.t, user, password)
	a.mu.Lock()
	a.conv = conv
	a.mu.Unlock()
	return first
}

func (a *scramAuther) Authenticate(in *paho.Auth) *paho.Auth {
	a.mu.Lock()
	defer a.mu.Unlock()
	out, err := a.conv.Step(string(in.Properties.AuthData))
	assert.NoError(a.t, err)
	return &paho.Auth{ReasonCode: byte(mqtt.ContinueAuthentication),
		Properties: &paho.AuthProperties{AuthMethod: scramMethod, AuthData: []byte(out)}}
}

func (a *scramAuther) Authenticated() {}

// finish checks the server's final message.
func (a *scramAuther) finish(data []byte) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, err := a.conv.Step(string(data))
	return err == nil && a.conv.Valid()
}

// paho.golang's Auther drives the same exchange, and its Authenticate
// re-authenticates a live connection.
func TestAuth_SCRAMPaho(t *testing.T) {
	_, addr := scramBroker(t, session.Config{})
	au := &scramAuther{t: t}
	first := au.start("alice", "wonderland")
	c, err := tryV5(t, addr, "paho-scram", paho.Connect{CleanStart: true,
		Properties: &paho.ConnectProperties{AuthMethod: scramMethod, AuthData: first}},
		&paho.ClientConfig{AuthHandler: au})
	require.NoError(t, err)
	require.Equal(t, byte(0), c.connack.ReasonCode)
	require.NotNil(t, c.connack.Properties)
	assert.Equal(t, scramMethod, c.connack.Properties.AuthMethod)
	assert.True(t, au.finish(c.connack.Properties.AuthData), "the server's signature verifies")

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := c.Authenticate(ctx, &paho.Auth{ReasonCode: byte(mqtt.ReAuthenticate),
		Properties: &paho.AuthProperties{AuthMethod: scramMethod, AuthData: au.start("alice", "wonderland")}})
	require.NoError(t, err)
	assert.True(t, resp.Success)
	assert.Equal(t, byte(mqtt.Success), resp.ReasonCode)
	// paho.golang v0.23.0's AuthResponse drops the final AUTH's
	// Authentication Data, so the server's proof after a re-authentication
	// is checked by TestAuth_Reauthenticate, with the raw client.

	subOne(t, c, paho.SubscribeOptions{Topic: "p/s", QoS: 1}, 0)
	c.pub(t, &paho.Publish{Topic: "p/s", QoS: 1, Payload: []byte("after reauth")})
	assert.Equal(t, "after reauth", next(t, c.msgs).payload)
}

// nextOf reads n packets and returns them by type (the order between a
// reply to one packet and a reply to another is the broker's).
func nextOf(t *testing.T, c *raw, n int) map[mqtt.PacketType][]mqtt.Packet {
	t.Helper()
	got := make(map[mqtt.PacketType][]mqtt.Packet)
	for range n {
		p := c.next(t)
		got[p.Type()] = append(got[p.Type()], p)
	}
	return got
}

// [MQTT-4.12.1-1] A re-authentication interleaved with PUBLISH traffic:
// the connection keeps working under the old authentication while the
// exchange runs (MQTT 5.0 section 4.12.1), and the exchange ends well.
func TestAuth_ReauthInterleavedWithPublish(t *testing.T) {
	_, addr := scramBroker(t, session.Config{})
	c, _, ack := scramConnect(t, addr, "ri", "alice", "wonderland")
	require.Equal(t, mqtt.Success, ack.ReasonCode)
	c.send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "ri/t", QoS: 1}}})
	require.IsType(t, &mqtt.SubAck{}, c.next(t))

	conv, first := scramConv(t, "alice", "wonderland")
	c.send(t, authPkt(mqtt.ReAuthenticate, scramMethod, first))
	c.send(t, &mqtt.Publish{QoS: 1, PacketID: 7, Topic: []byte("ri/t"), Payload: []byte("during")})
	got := nextOf(t, c, 3) // AUTH 0x18, PUBACK 7, the message
	require.Len(t, got[mqtt.AUTH], 1)
	a := got[mqtt.AUTH][0].(*mqtt.Auth)
	require.Equal(t, mqtt.ContinueAuthentication, a.ReasonCode)
	require.Len(t, got[mqtt.PUBACK], 1)
	assert.Equal(t, uint16(7), got[mqtt.PUBACK][0].(*mqtt.PubAck).PacketID)
	require.Len(t, got[mqtt.PUBLISH], 1)
	m := got[mqtt.PUBLISH][0].(*mqtt.Publish)
	assert.Equal(t, "during", string(m.Payload))
	c.send(t, &mqtt.PubAck{PacketID: m.PacketID})

	// The client's final message, with another PUBLISH right behind it.
	c.send(t, authPkt(mqtt.ContinueAuthentication, scramMethod, step(t, conv, a.Properties.AuthData)))
	c.send(t, &mqtt.Publish{QoS: 1, PacketID: 8, Topic: []byte("ri/t"), Payload: []byte("after")})
	got = nextOf(t, c, 3) // AUTH 0x00, PUBACK 8, the message
	require.Len(t, got[mqtt.AUTH], 1)
	a = got[mqtt.AUTH][0].(*mqtt.Auth)
	assert.Equal(t, mqtt.Success, a.ReasonCode)
	step(t, conv, a.Properties.AuthData)
	assert.True(t, conv.Valid(), "the server's signature verifies")
	require.Len(t, got[mqtt.PUBACK], 1)
	assert.Equal(t, uint16(8), got[mqtt.PUBACK][0].(*mqtt.PubAck).PacketID)
	require.Len(t, got[mqtt.PUBLISH], 1)
	assert.Equal(t, "after", string(got[mqtt.PUBLISH][0].(*mqtt.Publish).Payload))
}

// Packets sent ahead of the server's AUTH (a client that does not wait)
// are read in turn: a PUBLISH behind the CONNECT, in the same segment, is
// [MQTT-3.1.2-30]'s protocol error once the AUTH 0x18 is out.
func TestAuth_PacketBehindConnect(t *testing.T) {
	b, addr := scramBroker(t, session.Config{})
	_, first := scramConv(t, "alice", "wonderland")
	cp := &mqtt.Connect{Version: mqtt.V5, ClientID: "pb", CleanStart: true}
	cp.Properties.AuthMethod, cp.Properties.AuthData = scramMethod, first
	buf, err := cp.AppendTo(nil, mqtt.V5)
	require.NoError(t, err)
	buf, err = (&mqtt.Publish{Topic: []byte("t"), Payload: []byte("x")}).AppendTo(buf, mqtt.V5)
	require.NoError(t, err)
	c := dialRaw(t, addr)
	c.r.SetVersion(mqtt.V5)
	c.write(t, buf)
	require.IsType(t, &mqtt.Auth{}, c.next(t))
	ack, ok := c.next(t).(*mqtt.Connack)
	require.True(t, ok)
	assert.Equal(t, mqtt.ProtocolError, ack.ReasonCode)
	assert.Nil(t, c.closed(t))
	assert.Equal(t, uint64(1), counter(b, "refused_auth_protocol"))
}

// An AUTH larger than the server's Maximum Packet Size, in the middle of
// the exchange, closes the connection (counted packet_too_large); nothing
// of it is handed to SCRAM.
func TestAuth_OversizedAuth(t *testing.T) {
	b, addr := scramBroker(t, session.Config{MaxPacketSize: 512})
	c, _, p := scramStart(t, addr, "big", "alice", "wonderland")
	require.IsType(t, &mqtt.Auth{}, p)
	c.send(t, authPkt(mqtt.ContinueAuthentication, scramMethod, []byte(strings.Repeat("c", 600))))
	c.closed(t)
	assert.Equal(t, uint64(1), counter(b, "disconnect_"+session.ReasonTooLarge))
	assert.Zero(t, counter(b, "refused_auth_failed"))
}

// A malformed AUTH in the exchange (its properties run past its end) is
// refused with CONNACK 0x81 Malformed Packet, and closed.
func TestAuth_MalformedAuth(t *testing.T) {
	b, addr := scramBroker(t, session.Config{})
	c, _, p := scramStart(t, addr, "mal", "alice", "wonderland")
	require.IsType(t, &mqtt.Auth{}, p)
	c.write(t, []byte{0xF0, 0x02, byte(mqtt.ContinueAuthentication), 0x05}) // 5 bytes of properties, none there
	ack, ok := c.next(t).(*mqtt.Connack)
	require.True(t, ok)
	assert.Equal(t, mqtt.MalformedPacket, ack.ReasonCode)
	assert.Nil(t, c.closed(t))
	assert.Equal(t, uint64(1), counter(b, "refused_auth_protocol"))
	assert.Zero(t, counter(b, "refused_auth_failed"))
}

// connections_refused{reason="auth"} counts connections refused at their
// CONNECT, the CONNECT whose User Name is not the SCRAM user among them; a
// failed re-authentication closes an admitted connection and counts in
// connections_closed{reason="auth_failed"} only.
func TestAuth_RefusedMetricCountsRefusalsOnly(t *testing.T) {
	m := ops.NewMetrics()
	_, addr := startBroker(t, Config{Admission: admission.Config{SCRAM: scramUsers(t)}, Metrics: m})
	refused := func() float64 { return testutil.ToFloat64(m.ConnectionsRefused.WithLabelValues(ops.RefuseAuth)) }

	c, _, ack := scramConnect(t, addr, "mr", "alice", "wonderland")
	require.Equal(t, mqtt.Success, ack.ReasonCode)
	d, ok := reauth(t, c, scramMethod, "alice", "wrong").(*mqtt.Disconnect)
	require.True(t, ok)
	assert.Equal(t, mqtt.NotAuthorized, d.ReasonCode)
	c.closed(t)
	assert.Zero(t, refused(), "a failed re-authentication refuses no connection")
	assert.Equal(t, float64(1), testutil.ToFloat64(m.ConnectionsClosed.WithLabelValues(session.ReasonAuthFailed)))

	conv, first := scramConv(t, "alice", "wonderland")
	u := dialRaw(t, addr)
	u.r.SetVersion(mqtt.V5)
	cp := &mqtt.Connect{Version: mqtt.V5, ClientID: "mr2", CleanStart: true, Username: "bob", HasUsername: true}
	cp.Properties.AuthMethod, cp.Properties.AuthData = scramMethod, first
	u.send(t, cp)
	a := u.next(t).(*mqtt.Auth)
	u.send(t, authPkt(mqtt.ContinueAuthentication, scramMethod, step(t, conv, a.Properties.AuthData)))
	assert.Equal(t, mqtt.NotAuthorized, u.next(t).(*mqtt.Connack).ReasonCode)
	assert.Equal(t, float64(1), refused(), "the User Name that is not the SCRAM user is a refusal")
}
