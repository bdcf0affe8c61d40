//go:build floodgate.solution

package broker

import (
	"bytes"
	"testing"
	"time"

	mqtt "floodgate/ch03-networking/03-mqtt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nextSized reads the next packet and also returns its size on the wire.
func (c *raw) nextSized(t *testing.T) (mqtt.Packet, int) {
	t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(wait))
	h, body, err := c.r.Next()
	require.NoError(t, err)
	p, err := mqtt.DecodePacket(h, body, c.r.Version())
	require.NoError(t, err)
	return p, h.Size()
}

// sizeOf is p's size encoded for 5.0.
func sizeOf(t *testing.T, p *mqtt.Publish) int {
	t.Helper()
	b, err := p.AppendTo(nil, mqtt.V5)
	require.NoError(t, err)
	return len(b)
}

// aliasSubscriber connects a raw 5.0 client with the given Topic Alias
// Maximum and Maximum Packet Size, subscribed to topic at QoS 0.
func aliasSubscriber(t *testing.T, addr, id, topic string, aliasMax uint16, maxSize uint32) *raw {
	t.Helper()
	cp := &mqtt.Connect{Version: mqtt.V5, ClientID: id, CleanStart: true}
	cp.Properties.TopicAliasMaximum = aliasMax
	cp.Properties.MaximumPacketSize = maxSize
	c, ack := connectRaw(t, addr, cp)
	require.Equal(t, mqtt.Success, ack.ReasonCode)
	c.send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: topic}}})
	require.IsType(t, &mqtt.SubAck{}, c.next(t))
	return c
}

// [MQTT-3.1.2-25] with outbound topic aliases: the size checked is that of
// the packet sent. Once the client knows the topic's alias, a PUBLISH that
// is too large with its topic name but fits with the alias alone (empty
// topic, 3-byte Topic Alias property) is delivered, not dropped.
func TestMaxPacketSize_OutboundWithKnownAlias(t *testing.T) {
	b, addr := startBroker(t, Config{})
	const topic = "alias/size/abcdefghijklmnopqrst" // 31 bytes
	const maxSize = 64
	c := aliasSubscriber(t, addr, "alias-size", topic, 5, maxSize)
	pub := connectV3(t, addr, "p", true)

	big := string(bytes.Repeat([]byte("x"), 50))
	withTopic := sizeOf(t, &mqtt.Publish{Topic: []byte(topic), Payload: []byte(big)})
	aliasOnly := sizeOf(t, &mqtt.Publish{Payload: []byte(big), Properties: mqtt.Properties{TopicAlias: 1}})
	require.Greater(t, withTopic, maxSize, "the test needs a message too large with its topic")
	require.LessOrEqual(t, aliasOnly, maxSize, "the test needs a message that fits with the alias alone")

	pub.pub(t, topic, 0, false, "1") // sets the alias: topic and alias
	p, n := c.nextSized(t)
	first := p.(*mqtt.Publish)
	assert.Equal(t, topic, string(first.Topic))
	require.NotZero(t, first.Properties.TopicAlias)
	assert.LessOrEqual(t, n, maxSize)

	pub.pub(t, topic, 0, false, big)
	p, n = c.nextSized(t)
	second := p.(*mqtt.Publish)
	assert.Empty(t, second.Topic, "the alias alone names the topic")
	assert.Equal(t, first.Properties.TopicAlias, second.Properties.TopicAlias)
	assert.Equal(t, big, string(second.Payload))
	assert.Equal(t, aliasOnly, n)
	assert.Zero(t, counter(b, "too_large_for_client"))
}

// [MQTT-3.1.2-25] with outbound topic aliases: a new alias adds three bytes
// to the first PUBLISH of a topic. One that fits only without them goes
// without an alias (the alias is not spent), never over the client's
// Maximum Packet Size; the next one, with room, sets the alias.
func TestMaxPacketSize_OutboundNewAliasOverflow(t *testing.T) {
	b, addr := startBroker(t, Config{})
	const topic = "alias/new/topic"
	payload := string(bytes.Repeat([]byte("y"), 40))
	maxSize := sizeOf(t, &mqtt.Publish{Topic: []byte(topic), Payload: []byte(payload)})
	withAlias := sizeOf(t, &mqtt.Publish{Topic: []byte(topic), Payload: []byte(payload), Properties: mqtt.Properties{TopicAlias: 1}})
	require.Greater(t, withAlias, maxSize)
	c := aliasSubscriber(t, addr, "alias-new", topic, 5, uint32(maxSize))
	pub := connectV3(t, addr, "p", true)

	pub.pub(t, topic, 0, false, payload)
	p, n := c.nextSized(t)
	first := p.(*mqtt.Publish)
	assert.LessOrEqual(t, n, maxSize, "never larger than the client's Maximum Packet Size")
	assert.Equal(t, topic, string(first.Topic))
	assert.Zero(t, first.Properties.TopicAlias, "no room for a new alias")

	pub.pub(t, topic, 0, false, "z")
	p, _ = c.nextSized(t)
	second := p.(*mqtt.Publish)
	assert.Equal(t, topic, string(second.Topic))
	assert.Equal(t, uint16(1), second.Properties.TopicAlias, "the alias was not spent on the first")

	pub.pub(t, topic, 0, false, payload) // now fits with the alias alone
	p, n = c.nextSized(t)
	third := p.(*mqtt.Publish)
	assert.Empty(t, third.Topic)
	assert.Less(t, n, maxSize)
	assert.Zero(t, counter(b, "too_large_for_client"))
}

// [MQTT-3.1.2-25] a QoS 1 message that would fit with an alias, but whose
// topic has none and gets none (the client's Topic Alias Maximum is spent),
// is too large as sent: it is not sent, and it leaves the session's
// in-flight window as if delivered. The next one is delivered, and nothing
// stays waiting for a PUBACK.
func TestMaxPacketSize_OutboundTooLargeWithoutAlias(t *testing.T) {
	b, addr := startBroker(t, Config{})
	const maxSize = 64
	const other, topic = "alias/drop/a", "alias/drop/bbbbbbbbbbbbbbbbbbbbbbbbb"
	big := string(bytes.Repeat([]byte("x"), 40))
	require.LessOrEqual(t, sizeOf(t, &mqtt.Publish{QoS: 1, PacketID: 1, Payload: []byte(big), Properties: mqtt.Properties{TopicAlias: 1}}), maxSize)
	require.Greater(t, sizeOf(t, &mqtt.Publish{QoS: 1, PacketID: 1, Topic: []byte(topic), Payload: []byte(big)}), maxSize)
	cp := &mqtt.Connect{Version: mqtt.V5, ClientID: "alias-drop", CleanStart: true}
	cp.Properties.TopicAliasMaximum = 1
	cp.Properties.MaximumPacketSize = maxSize
	c, _ := connectRaw(t, addr, cp)
	c.send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "alias/drop/#", QoS: 1}}})
	require.IsType(t, &mqtt.SubAck{}, c.next(t))
	pub := connectV3(t, addr, "p", true)

	pub.pub(t, other, 1, false, "a") // takes the only alias
	p := c.next(t).(*mqtt.Publish)
	require.Equal(t, uint16(1), p.Properties.TopicAlias)
	c.send(t, &mqtt.PubAck{PacketID: p.PacketID})

	pub.pub(t, topic, 1, false, big)
	pub.pub(t, topic, 1, false, "small")
	p = c.next(t).(*mqtt.Publish)
	assert.Equal(t, topic, string(p.Topic))
	assert.Equal(t, "small", string(p.Payload))
	c.send(t, &mqtt.PubAck{PacketID: p.PacketID})
	c.send(t, &mqtt.PingReq{}) // its answer comes after the PUBACK was handled
	require.IsType(t, &mqtt.PingResp{}, c.next(t))
	assert.Equal(t, uint64(1), counter(b, "too_large_for_client"))
	b.mu.Lock()
	st := b.sessions["alias-drop"].st
	b.mu.Unlock()
	in, pend := st.Inflight()
	assert.Zero(t, in, "the dropped message left the window")
	assert.Zero(t, pend)
}

// [MQTT-3.1.2-25] with a topic shorter than three bytes the alias form is
// the larger one (an empty topic and a 3-byte property against 1 or 2
// bytes of topic): a PUBLISH that fits with its topic name is delivered
// with it, whether or not the topic has an alias yet, never dropped for
// the size of a form it need not take.
func TestMaxPacketSize_OutboundShortTopicPlainForm(t *testing.T) {
	b, addr := startBroker(t, Config{})
	const topic = "a"
	payload := string(bytes.Repeat([]byte("p"), 40))
	maxSize := sizeOf(t, &mqtt.Publish{Topic: []byte(topic), Payload: []byte(payload)})
	require.Greater(t, sizeOf(t, &mqtt.Publish{Payload: []byte(payload), Properties: mqtt.Properties{TopicAlias: 1}}), maxSize,
		"the test needs a message that fits only with its topic name")
	c := aliasSubscriber(t, addr, "alias-short", topic, 5, uint32(maxSize))
	pub := connectV3(t, addr, "p", true)

	pub.pub(t, topic, 0, false, payload) // no alias yet: it fits as it is
	p, n := c.nextSized(t)
	first := p.(*mqtt.Publish)
	assert.Equal(t, topic, string(first.Topic))
	assert.Zero(t, first.Properties.TopicAlias)
	assert.Equal(t, payload, string(first.Payload))
	assert.Equal(t, maxSize, n)

	pub.pub(t, topic, 0, false, "z") // sets the alias
	p, _ = c.nextSized(t)
	require.Equal(t, uint16(1), p.(*mqtt.Publish).Properties.TopicAlias)

	pub.pub(t, topic, 0, false, payload) // the alias is known; the topic name is smaller
	p, n = c.nextSized(t)
	third := p.(*mqtt.Publish)
	assert.Equal(t, topic, string(third.Topic))
	assert.Zero(t, third.Properties.TopicAlias)
	assert.Equal(t, payload, string(third.Payload))
	assert.Equal(t, maxSize, n)
	assert.Zero(t, counter(b, "too_large_for_client"))
}

// [MQTT-3.1.2-25] a QoS 2 message too large for the client in every form
// is not sent and is completed in the session as if delivered: it leaves
// the in-flight window, and the next message's flow runs to PUBCOMP.
func TestMaxPacketSize_OutboundTooLargeQoS2(t *testing.T) {
	b, addr := startBroker(t, Config{})
	const maxSize = 64
	const topic = "big/qos2"
	cp := &mqtt.Connect{Version: mqtt.V5, ClientID: "too-large-2", CleanStart: true}
	cp.Properties.TopicAliasMaximum = 2
	cp.Properties.MaximumPacketSize = maxSize
	c, _ := connectRaw(t, addr, cp)
	c.send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: topic, QoS: 2}}})
	require.IsType(t, &mqtt.SubAck{}, c.next(t))
	pub := connectV3(t, addr, "p", true)

	pub.pub(t, topic, 2, false, string(bytes.Repeat([]byte("x"), 2*maxSize)))
	pub.pub(t, topic, 2, false, "small")
	p := c.next(t).(*mqtt.Publish)
	assert.Equal(t, "small", string(p.Payload))
	c.send(t, &mqtt.PubRec{PacketID: p.PacketID})
	rel := c.next(t).(*mqtt.PubRel)
	assert.Equal(t, p.PacketID, rel.PacketID)
	c.send(t, &mqtt.PubComp{PacketID: p.PacketID})
	c.send(t, &mqtt.PingReq{})
	require.IsType(t, &mqtt.PingResp{}, c.next(t))
	assert.Equal(t, uint64(1), counter(b, "too_large_for_client"))
	b.mu.Lock()
	st := b.sessions["too-large-2"].st
	b.mu.Unlock()
	in, pend := st.Inflight()
	assert.Zero(t, in, "the dropped message left the window")
	assert.Zero(t, pend)
}
