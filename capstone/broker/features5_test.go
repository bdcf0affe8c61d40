//go:build floodgate.solution

package broker

import (
	"bytes"
	"testing"

	"floodgate/capstone/session"
	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func subOne(t *testing.T, c *v5, o paho.SubscribeOptions, id int) {
	t.Helper()
	s := &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{o}}
	if id > 0 {
		s.Properties = &paho.SubscribeProperties{SubscriptionIdentifier: &id}
	}
	ack := c.sub(t, s)
	require.Less(t, ack.Reasons[0], byte(0x80), "SUBACK refused %s", o.Topic)
}

// MQTT 5.0 section 4.8.2: each message to a $share group goes to one member.
func TestShared_OneMemberPerMessage(t *testing.T) {
	_, addr := startBroker(t, Config{})
	a := connectV5(t, addr, "a", paho.Connect{CleanStart: true})
	bb := connectV5(t, addr, "b", paho.Connect{CleanStart: true})
	subOne(t, a, paho.SubscribeOptions{Topic: "$share/g/jobs/#", QoS: 1}, 0)
	subOne(t, bb, paho.SubscribeOptions{Topic: "$share/g/jobs/#", QoS: 1}, 0)
	pub := connectV5(t, addr, "p", paho.Connect{CleanStart: true})
	for range 4 {
		pub.pub(t, &paho.Publish{Topic: "jobs/1", QoS: 1, Payload: []byte("job")})
	}
	// Turn by turn: two each, none twice.
	for range 2 {
		next(t, a.msgs)
		next(t, bb.msgs)
	}
	pub.pub(t, &paho.Publish{Topic: "jobs/1", QoS: 1, Payload: []byte("fifth")})
	select {
	case <-a.msgs:
	case <-bb.msgs:
	}
	none(t, a.msgs, "a got a message twice")
	none(t, bb.msgs, "b got a message twice")
}

// [MQTT-3.8.3-3] No Local: a client does not receive its own messages.
func TestSubOptions_NoLocal(t *testing.T) {
	_, addr := startBroker(t, Config{})
	c := connectV5(t, addr, "self", paho.Connect{CleanStart: true})
	subOne(t, c, paho.SubscribeOptions{Topic: "nl/#", QoS: 1, NoLocal: true}, 0)
	subOne(t, c, paho.SubscribeOptions{Topic: "marker", QoS: 1}, 0)
	c.pub(t, &paho.Publish{Topic: "nl/x", QoS: 1, Payload: []byte("mine")})
	other := connectV5(t, addr, "other", paho.Connect{CleanStart: true})
	other.pub(t, &paho.Publish{Topic: "nl/x", QoS: 1, Payload: []byte("theirs")})
	assert.Equal(t, "theirs", next(t, c.msgs).payload)
}

// [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error.
func TestSubOptions_NoLocalOnSharedIsProtocolError(t *testing.T) {
	_, addr := startBroker(t, Config{})
	c, _ := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "x", CleanStart: true})
	// The codec refuses to encode it, so by hand: packet id 1, no
	// properties, "$share/g/t", options 0x04 (No Local).
	f := "$share/g/t"
	body := append([]byte{0, 1, 0, 0, byte(len(f) >> 8), byte(len(f))}, f...)
	body = append(body, 0x04)
	c.write(t, append([]byte{0x82, byte(len(body))}, body...))
	d := c.closed(t)
	require.NotNil(t, d)
	assert.Equal(t, mqtt.ProtocolError, d.ReasonCode)
}

// [MQTT-3.3.1-12] [MQTT-3.3.1-13] Retain As Published keeps the publisher's
// RETAIN flag on live messages; without it the flag is 0.
func TestSubOptions_RetainAsPublished(t *testing.T) {
	_, addr := startBroker(t, Config{})
	keep := connectV5(t, addr, "keep", paho.Connect{CleanStart: true})
	clear := connectV5(t, addr, "clear", paho.Connect{CleanStart: true})
	subOne(t, keep, paho.SubscribeOptions{Topic: "rap", QoS: 1, RetainAsPublished: true}, 0)
	subOne(t, clear, paho.SubscribeOptions{Topic: "rap", QoS: 1}, 0)
	keep.pub(t, &paho.Publish{Topic: "rap", QoS: 1, Retain: true, Payload: []byte("r")})
	assert.True(t, next(t, keep.msgs).retained)
	assert.False(t, next(t, clear.msgs).retained)
}

// [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] Retain Handling: 0 sends
// retained messages on every SUBSCRIBE, 1 only for a new subscription, 2
// never.
func TestSubOptions_RetainHandling(t *testing.T) {
	_, addr := startBroker(t, Config{})
	pub := connectV5(t, addr, "p", paho.Connect{CleanStart: true})
	pub.pub(t, &paho.Publish{Topic: "rh", QoS: 1, Retain: true, Payload: []byte("kept")})
	for _, tc := range []struct {
		handling byte
		want     []bool // retained message after the first and the second SUBSCRIBE
	}{{0, []bool{true, true}}, {1, []bool{true, false}}, {2, []bool{false, false}}} {
		c := connectV5(t, addr, "rh", paho.Connect{CleanStart: true})
		subOne(t, c, paho.SubscribeOptions{Topic: "marker", QoS: 1}, 0)
		for i, want := range tc.want {
			subOne(t, c, paho.SubscribeOptions{Topic: "rh", QoS: 1, RetainHandling: tc.handling}, 0)
			pub.pub(t, &paho.Publish{Topic: "marker", QoS: 1, Payload: []byte("marker")})
			m := next(t, c.msgs)
			if want {
				assert.Equal(t, "kept", m.payload, "handling %d, SUBSCRIBE %d", tc.handling, i+1)
				m = next(t, c.msgs)
			}
			assert.Equal(t, "marker", m.payload, "handling %d, SUBSCRIBE %d", tc.handling, i+1)
		}
		c.Disconnect(&paho.Disconnect{})
		<-c.Done()
	}
}

// [MQTT-3.3.4-3] A message carries the identifiers of the subscriptions it
// matched.
func TestSubscriptionIdentifier(t *testing.T) {
	_, addr := startBroker(t, Config{})
	c := connectV5(t, addr, "ids", paho.Connect{CleanStart: true})
	subOne(t, c, paho.SubscribeOptions{Topic: "sid/#", QoS: 1}, 42)
	c.pub(t, &paho.Publish{Topic: "sid/x", QoS: 1, Payload: []byte("x")})
	m := next(t, c.msgs)
	require.NotNil(t, m.props.SubscriptionIdentifier)
	assert.Equal(t, 42, *m.props.SubscriptionIdentifier)
}

// [MQTT-3.3.2-17] [MQTT-3.3.2-18] User properties, response topic,
// correlation data and content type pass through unchanged.
func TestUserPropertiesPassThrough(t *testing.T) {
	_, addr := startBroker(t, Config{})
	c := connectV5(t, addr, "up", paho.Connect{CleanStart: true})
	subOne(t, c, paho.SubscribeOptions{Topic: "req", QoS: 1}, 0)
	props := &paho.PublishProperties{ResponseTopic: "resp/1", CorrelationData: []byte{1, 2, 3},
		ContentType: "text/plain", User: paho.UserProperties{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}}}
	c.pub(t, &paho.Publish{Topic: "req", QoS: 1, Payload: []byte("x"), Properties: props})
	m := next(t, c.msgs)
	assert.Equal(t, "resp/1", m.props.ResponseTopic)
	assert.Equal(t, []byte{1, 2, 3}, m.props.CorrelationData)
	assert.Equal(t, "text/plain", m.props.ContentType)
	assert.Equal(t, paho.UserProperties{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}}, m.props.User)
}

// [MQTT-3.3.2-6] A forwarded message carries what is left of its expiry.
func TestMessageExpiry_Forwarded(t *testing.T) {
	_, addr := startBroker(t, Config{})
	c := connectV5(t, addr, "exp", paho.Connect{CleanStart: true})
	subOne(t, c, paho.SubscribeOptions{Topic: "exp", QoS: 1}, 0)
	c.pub(t, &paho.Publish{Topic: "exp", QoS: 1, Payload: []byte("x"), Properties: &paho.PublishProperties{MessageExpiry: u32(60)}})
	m := next(t, c.msgs)
	require.NotNil(t, m.props.MessageExpiry)
	assert.LessOrEqual(t, *m.props.MessageExpiry, uint32(60))
	assert.Greater(t, *m.props.MessageExpiry, uint32(0))
}

// MQTT 5.0 section 3.3.2.3.4: a client may name a topic by an alias it set
// earlier in the connection.
func TestTopicAlias_Inbound(t *testing.T) {
	_, addr := startBroker(t, Config{Session: session.Config{TopicAliasMaximum: 4}})
	w := connectV3(t, addr, "w", true)
	w.sub(t, "alias/#", 0)
	c, _ := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "al", CleanStart: true})
	p := &mqtt.Publish{Topic: []byte("alias/long/topic"), Payload: []byte("1")}
	p.Properties.TopicAlias = 3
	c.send(t, p)
	p2 := &mqtt.Publish{Payload: []byte("2")}
	p2.Properties.TopicAlias = 3
	c.send(t, p2)
	assert.Equal(t, "alias/long/topic", next(t, w.msgs).topic)
	m := next(t, w.msgs)
	assert.Equal(t, "alias/long/topic", m.topic)
	assert.Equal(t, "2", m.payload)
}

// [MQTT-3.3.2-9] A Topic Alias above the broker's maximum: DISCONNECT 0x94.
func TestTopicAlias_AboveMaximum(t *testing.T) {
	b, addr := startBroker(t, Config{Session: session.Config{TopicAliasMaximum: 2}})
	c, _ := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "al", CleanStart: true})
	p := &mqtt.Publish{Topic: []byte("t"), Payload: []byte("1")}
	p.Properties.TopicAlias = 3
	c.send(t, p)
	d := c.closed(t)
	require.NotNil(t, d)
	assert.Equal(t, mqtt.TopicAliasInvalid, d.ReasonCode)
	assert.Equal(t, uint64(1), counter(b, "disconnect_topic_alias_invalid"))
}

// MQTT 5.0 section 3.3.2.3.4: the broker sends aliases when the client's
// Topic Alias Maximum allows: the topic once, then the alias alone.
func TestTopicAlias_Outbound(t *testing.T) {
	_, addr := startBroker(t, Config{})
	cp := &mqtt.Connect{Version: mqtt.V5, ClientID: "al", CleanStart: true}
	cp.Properties.TopicAliasMaximum = 5
	c, _ := connectRaw(t, addr, cp)
	c.send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "ta"}}})
	require.IsType(t, &mqtt.SubAck{}, c.next(t))
	pub := connectV3(t, addr, "p", true)
	pub.pub(t, "ta", 1, false, "1")
	pub.pub(t, "ta", 1, false, "2")
	first := c.next(t).(*mqtt.Publish)
	second := c.next(t).(*mqtt.Publish)
	assert.Equal(t, "ta", string(first.Topic))
	assert.NotZero(t, first.Properties.TopicAlias)
	assert.Empty(t, second.Topic)
	assert.Equal(t, first.Properties.TopicAlias, second.Properties.TopicAlias)
}

// [MQTT-3.2.2-15 (5.0)] A packet larger than the broker's Maximum Packet Size:
// DISCONNECT 0x95 (5.0).
func TestMaxPacketSize_Inbound(t *testing.T) {
	b, addr := startBroker(t, Config{Session: session.Config{MaxPacketSize: 1024}})
	c, _ := connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "big", CleanStart: true})
	c.send(t, &mqtt.Publish{Topic: []byte("t"), Payload: bytes.Repeat([]byte("x"), 2048)})
	d := c.closed(t)
	require.NotNil(t, d)
	assert.Equal(t, mqtt.PacketTooLarge, d.ReasonCode)
	assert.Equal(t, uint64(1), counter(b, "disconnect_packet_too_large"))
}

// [MQTT-3.1.2-25] The broker never sends a packet larger than the client's
// Maximum Packet Size: such a message is dropped for that client.
func TestMaxPacketSize_Outbound(t *testing.T) {
	b, addr := startBroker(t, Config{})
	c := connectV5(t, addr, "small", paho.Connect{CleanStart: true,
		Properties: &paho.ConnectProperties{MaximumPacketSize: u32(128)}})
	subOne(t, c, paho.SubscribeOptions{Topic: "sz", QoS: 1}, 0)
	pub := connectV3(t, addr, "p", true)
	pub.pub(t, "sz", 1, false, string(bytes.Repeat([]byte("x"), 500)))
	pub.pub(t, "sz", 1, false, "small")
	assert.Equal(t, "small", next(t, c.msgs).payload)
	assert.Equal(t, uint64(1), counter(b, "too_large_for_client"))
}

// MQTT 5.0 section 3.2.2.3.15: a client that asks (Request Response
// Information 1) gets Response Information in CONNACK; one that does not,
// none.
func TestConnect_ResponseInformation(t *testing.T) {
	_, addr := startBroker(t, Config{})
	cp := &mqtt.Connect{Version: mqtt.V5, ClientID: "asker", CleanStart: true}
	cp.Properties.RequestResponseInfo = 1
	_, ack := connectRaw(t, addr, cp)
	assert.Equal(t, "floodgate/response/asker", ack.Properties.ResponseInfo)
	_, ack = connectRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "quiet", CleanStart: true})
	assert.Empty(t, ack.Properties.ResponseInfo)
}
