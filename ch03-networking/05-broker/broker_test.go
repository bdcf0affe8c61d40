package broker

import (
	"net"
	"testing"
	"testing/synctest"
	"time"

	mqtt "floodgate/ch03-networking/03-mqtt"
	"floodgate/ch03-networking/03-mqtt/mqtttest"
	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTask1_SessionsAndTakeover(t *testing.T) {
	needParts(t)
	_, addr := startBroker(t, Config{})
	pub := connectV3(t, addr, "publisher", true)

	t.Run("a persistent session keeps its subscriptions", func(t *testing.T) {
		c := connectV3(t, addr, "dev1", false)
		assert.False(t, c.sessionPresent, "first connection")
		c.sub(t, "s/#", 0)
		c.Disconnect(0)

		c = connectV3(t, addr, "dev1", false)
		assert.True(t, c.sessionPresent, "Session Present on resume [MQTT-3.2.2-3]")
		pub.pub(t, "s/x", 0, false, "hello") // no SUBSCRIBE this time
		m := next(t, c.msgs)
		assert.Equal(t, "s/x", m.topic)
		assert.Equal(t, "hello", m.payload)
		c.Disconnect(0)
	})
	t.Run("a clean session discards the old one", func(t *testing.T) {
		c := connectV3(t, addr, "dev1", true)
		assert.False(t, c.sessionPresent, "clean session [MQTT-3.2.2-2]")
		c.sub(t, "probe", 0)
		pub.pub(t, "s/x", 0, false, "not for you")
		pub.pub(t, "probe", 0, false, "probe")
		assert.Equal(t, "probe", next(t, c.msgs).topic, "s/# went with the old session")
	})
	t.Run("a second connection takes the client id over", func(t *testing.T) {
		first := connectV3(t, addr, "dev2", true)
		second := connectV3(t, addr, "dev2", true)
		select {
		case <-first.lost:
		case <-time.After(wait):
			require.FailNow(t, "the first connection was not closed [MQTT-3.1.4-2]")
		}
		second.sub(t, "self", 0)
		second.pub(t, "self", 1, false, "still here")
		assert.Equal(t, "still here", next(t, second.msgs).payload)
	})
	t.Run("MQTT 5.0 session expiry makes a session persistent", func(t *testing.T) {
		expiry := uint32(3600)
		cp := paho.Connect{Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}
		c := connectV5(t, addr, "dev5", cp)
		assert.False(t, c.connack.SessionPresent)
		c.sub(t, paho.SubscribeOptions{Topic: "five/#"})
		c.Disconnect(&paho.Disconnect{})
		<-c.Done()

		c = connectV5(t, addr, "dev5", cp)
		assert.True(t, c.connack.SessionPresent)
		pub.pub(t, "five/x", 0, false, "v5")
		assert.Equal(t, "five/x", next(t, c.msgs).topic)
	})
}

func TestTask2_RetainedMessages(t *testing.T) {
	needParts(t)
	_, addr := startBroker(t, Config{})
	pub := connectV3(t, addr, "publisher", true)
	// QoS 1, so that each PUBACK proves the broker has handled the message.
	pub.pub(t, "r/a", 1, true, "kept")
	pub.pub(t, "r/b", 1, true, "then cleared")
	pub.pub(t, "r/b", 1, true, "") // an empty retained message clears the topic [MQTT-3.3.1-10]
	pub.pub(t, "r/c", 1, false, "not retained")
	pub.pub(t, "other", 1, true, "other topic")

	c := connectV3(t, addr, "late", true)
	c.sub(t, "r/+", 1)
	m := next(t, c.msgs)
	assert.Equal(t, msg{topic: "r/a", payload: "kept", qos: 1, retained: true}, m,
		"the retained message, flagged retained [MQTT-3.3.1-8]")
	c.sub(t, "probe", 0)
	pub.pub(t, "probe", 1, false, "probe")
	assert.Equal(t, "probe", next(t, c.msgs).topic, "only r/a was retained under r/+")

	pub.pub(t, "r/a", 0, true, "live")
	m = next(t, c.msgs)
	assert.Equal(t, "live", m.payload)
	assert.False(t, m.retained, "a live message is not flagged retained [MQTT-3.3.1-9]")

	t.Run("MQTT 5.0 retain handling", func(t *testing.T) {
		c := connectV5(t, addr, "five", paho.Connect{CleanStart: true})
		c.sub(t, paho.SubscribeOptions{Topic: "r/#", RetainHandling: 2}, paho.SubscribeOptions{Topic: "probe"})
		pub.pub(t, "probe", 1, false, "probe")
		assert.Equal(t, "probe", next(t, c.msgs).topic, "retain handling 2: no retained messages")
		c.sub(t, paho.SubscribeOptions{Topic: "other"})
		assert.Equal(t, msg{topic: "other", payload: "other topic", retained: true}, next(t, c.msgs))
	})
}

func TestTask3_WillsAndSessionEnd(t *testing.T) {
	needParts(t)
	_, addr := startBroker(t, Config{})
	watch := connectV3(t, addr, "watcher", true)
	watch.sub(t, "will/#", 0)
	withWill := func(id, topic string) *mqtt.Connect {
		return &mqtt.Connect{ClientID: id, CleanStart: true,
			Will: &mqtt.Will{Topic: topic, Payload: []byte(id + " is gone")}}
	}

	t.Run("a dropped connection publishes its will", func(t *testing.T) {
		c, _ := dialRaw(t, addr, withWill("a", "will/a"))
		c.NetConn.Close() // no DISCONNECT
		m := next(t, watch.msgs)
		assert.Equal(t, "will/a", m.topic)
		assert.Equal(t, "a is gone", m.payload)
	})
	t.Run("DISCONNECT discards the will", func(t *testing.T) {
		c, _ := dialRaw(t, addr, withWill("b", "will/b"))
		c.Send(t, &mqtt.Disconnect{})
		c.EOF(t) // the broker has finished with b
		watch.pub(t, "will/probe", 1, false, "probe")
		assert.Equal(t, "will/probe", next(t, watch.msgs).topic, "no will after DISCONNECT [MQTT-3.1.2-10]")
	})
	t.Run("a taken-over connection publishes its will", func(t *testing.T) {
		dialRaw(t, addr, withWill("c", "will/c"))
		dialRaw(t, addr, &mqtt.Connect{ClientID: "c", CleanStart: true})
		assert.Equal(t, "will/c", next(t, watch.msgs).topic)
	})
	t.Run("a clean session ends with its connection", func(t *testing.T) {
		c := connectV3(t, addr, "short", true)
		c.sub(t, "x", 0)
		c.Disconnect(0)
		_, ack := dialRaw(t, addr, &mqtt.Connect{ClientID: "short"}) // persistent this time
		assert.False(t, ack.SessionPresent, "the clean session is gone [MQTT-3.1.2-6]")
	})
}

func TestTask4_QoS1AndRedelivery(t *testing.T) {
	needParts(t)
	b, addr := startBroker(t, Config{MaxQueued: 2})
	pub := connectV3(t, addr, "publisher", true)
	persistent := &mqtt.Connect{ClientID: "q1"}

	c, _ := dialRaw(t, addr, persistent)
	c.Send(t, &mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "q/#", QoS: 1}}})
	ack, ok := c.Next(t).(*mqtt.SubAck)
	require.True(t, ok, "SUBACK")
	require.Equal(t, []mqtt.ReasonCode{mqtt.GrantedQoS1}, ack.ReasonCodes)

	pub.pub(t, "q/1", 1, false, "one")
	first, ok := c.Next(t).(*mqtt.Publish)
	require.True(t, ok, "PUBLISH expected")
	assert.Equal(t, mqtt.AtLeastOnce, first.QoS)
	assert.False(t, first.Dup)
	assert.NotZero(t, first.PacketID)
	drop(t, c) // gone without PUBACK

	pub.pub(t, "q/2", 1, false, "two") // queued while offline
	c, connack := dialRaw(t, addr, persistent)
	require.True(t, connack.SessionPresent)
	again, ok := c.Next(t).(*mqtt.Publish)
	require.True(t, ok, "PUBLISH expected")
	assert.True(t, again.Dup, "a redelivery is flagged DUP [MQTT-3.3.1-1]")
	assert.Equal(t, first.PacketID, again.PacketID, "with its original packet id [MQTT-4.4.0-1]")
	assert.Equal(t, "one", string(again.Payload))
	queued, ok := c.Next(t).(*mqtt.Publish)
	require.True(t, ok, "PUBLISH expected")
	assert.Equal(t, "two", string(queued.Payload))
	assert.False(t, queued.Dup)
	assert.NotEqual(t, first.PacketID, queued.PacketID)
	c.Send(t, &mqtt.PubAck{PacketID: again.PacketID})
	c.Send(t, &mqtt.PubAck{PacketID: queued.PacketID})
	c.Ping(t)
	c.Send(t, &mqtt.Disconnect{})
	c.EOF(t)

	c, _ = dialRaw(t, addr, persistent)
	c.Ping(t) // acknowledged messages are not sent again
	drop(t, c)

	t.Run("the offline queue is bounded", func(t *testing.T) {
		for _, p := range []string{"3", "4", "5"} {
			pub.pub(t, "q/n", 1, false, p)
		}
		assert.Equal(t, uint64(1), b.Stats().Dropped)
		c, _ := dialRaw(t, addr, persistent)
		for _, want := range []string{"4", "5"} {
			p, ok := c.Next(t).(*mqtt.Publish)
			require.True(t, ok, "PUBLISH expected")
			assert.Equal(t, want, string(p.Payload), "the oldest was dropped")
			c.Send(t, &mqtt.PubAck{PacketID: p.PacketID})
		}
		c.Ping(t)
	})
	t.Run("MQTT 5.0 clients at QoS 1", func(t *testing.T) {
		sub := connectV5(t, addr, "five-sub", paho.Connect{CleanStart: true})
		sub.sub(t, paho.SubscribeOptions{Topic: "five/+", QoS: 1})
		p := connectV5(t, addr, "five-pub", paho.Connect{CleanStart: true})
		p.pub(t, &paho.Publish{Topic: "five/a", QoS: 1, Payload: []byte("at least once")})
		assert.Equal(t, msg{topic: "five/a", payload: "at least once", qos: 1}, next(t, sub.msgs))
	})
}

func TestTask5_KeepAlive(t *testing.T) {
	needParts(t)
	synctest.Test(t, func(t *testing.T) {
		b, err := New(Config{})
		require.NoError(t, err)
		srv, cli := net.Pipe()
		ended := make(chan struct{})
		go func() {
			b.ServeConn(srv)
			close(ended)
		}()
		defer func() { // also when a require fails: leave no goroutine behind
			cli.Close()
			b.Close()
			<-ended
		}()
		c := mqtttest.New(cli, wait)
		c.Send(t, &mqtt.Connect{Version: mqtt.V311, ClientID: "k", CleanStart: true, KeepAlive: 10})
		require.IsType(t, &mqtt.Connack{}, c.Next(t))
		isOpen := func() bool {
			synctest.Wait() // let the broker act on the time that passed
			select {
			case <-ended:
				return false
			default:
				return true
			}
		}

		time.Sleep(14 * time.Second) // fake time: the bubble's clock
		require.True(t, isOpen(), "closed before 1.5 x keepalive")
		c.Ping(t) // any packet restarts the count
		time.Sleep(14 * time.Second)
		require.True(t, isOpen(), "closed 14 s after a PINGREQ")
		time.Sleep(2 * time.Second)
		assert.False(t, isOpen(), "open 16 s after the last packet with keepalive 10 s [MQTT-3.1.2-24]")
	})
}

func TestServeConnRejectsGarbage(t *testing.T) {
	_, addr := startBroker(t, Config{})
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer nc.Close()
	_, err = nc.Write([]byte{0x30, 0x02, 0x00, 0x00}) // a PUBLISH before CONNECT [MQTT-3.1.0-1]
	require.NoError(t, err)
	c := mqtttest.New(nc, wait)
	c.EOF(t)
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := New(Config{MaxQueued: -1})
	assert.ErrorIs(t, err, ErrBadConfig)
}

func TestQoS2IsRefused(t *testing.T) {
	needParts(t)
	_, addr := startBroker(t, Config{})
	c, ack := dialRaw(t, addr, &mqtt.Connect{Version: mqtt.V5, ClientID: "q2", CleanStart: true})
	assert.Equal(t, mqtt.AtLeastOnce, mqtt.QoS(ack.Properties.MaximumQoS), "CONNACK says Maximum QoS 1")
	assert.True(t, ack.Properties.Has(mqtt.PropMaximumQoS))
	c.Send(t, &mqtt.Publish{QoS: mqtt.ExactlyOnce, PacketID: 1, Topic: []byte("t"), Payload: []byte("x")})
	d, ok := c.Next(t).(*mqtt.Disconnect)
	require.True(t, ok, "DISCONNECT expected")
	assert.Equal(t, mqtt.QoSNotSupported, d.ReasonCode)
	c.EOF(t)
}
