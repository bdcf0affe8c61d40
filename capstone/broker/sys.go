package broker

import (
	"context"
	"strconv"
	"sync"
	"time"

	"floodgate/capstone/router"
	mqtt "floodgate/ch03-networking/03-mqtt"
)

// Version is the broker's version, published on $SYS/broker/version.
const Version = "floodgate 0.1"

// DefaultSysInterval is how often Run publishes the $SYS topics.
const DefaultSysInterval = 10 * time.Second

// publishSys publishes the broker's figures as retained messages under
// $SYS/broker/. A wildcard at the first level does not match them
// [MQTT-4.7.2-1], so only a client that asks for $SYS/# sees them.
func (b *Broker) publishSys(now time.Time) {
	counts := b.Counts()
	figures := []struct {
		topic string
		value string
	}{
		{"version", Version},
		{"uptime", strconv.FormatInt(int64(now.Sub(b.started).Seconds()), 10) + " seconds"},
		{"clients/connected", strconv.FormatInt(b.adm.Open(), 10)},
		{"sessions", strconv.Itoa(b.Sessions())},
		{"subscriptions", strconv.Itoa(b.router.Len())},
		{"retained", strconv.Itoa(b.router.RetainedCount())},
		{"messages/received", strconv.FormatUint(counts["messages_in"], 10)},
		{"messages/sent", strconv.FormatUint(counts["messages_out"], 10)},
		{"connections/accepted", strconv.FormatUint(counts["connections_accepted"], 10)},
		{"disconnects/slow_consumer", strconv.FormatUint(counts["disconnect_slow_consumer"], 10)},
	}
	for _, f := range figures {
		m := &router.Message{Topic: "$SYS/broker/" + f.topic, Payload: []byte(f.value), QoS: mqtt.AtMostOnce, Retain: true}
		b.router.Retain(m) // not persisted: recomputed at start
		b.routeSys(m)
	}
}

// routeSys delivers a $SYS message without counting it as client traffic.
func (b *Broker) routeSys(m *router.Message) {
	for _, d := range b.router.Route(m, nil, b.online) {
		b.mu.Lock()
		e := b.sessions[d.Client]
		b.mu.Unlock()
		if e != nil {
			e.st.Deliver(m, d.QoS, d.RetainAsPublished, d.SubIDs)
		}
	}
}

// runSys publishes the $SYS topics every interval until ctx is done.
func (b *Broker) runSys(ctx context.Context, wg *sync.WaitGroup, interval time.Duration) {
	defer wg.Done()
	b.publishSys(time.Now())
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			b.publishSys(now)
		}
	}
}
