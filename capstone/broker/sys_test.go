//go:build floodgate.solution

package broker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// $SYS/broker/ topics carry the broker's figures, retained; "#" does not
// match them [MQTT-4.7.2-1]; clients may not publish under '$'.
func TestSys_Topics(t *testing.T) {
	b, addr := startBroker(t, Config{})
	all := connectV3(t, addr, "all", true)
	all.sub(t, "#", 0)
	sys := connectV3(t, addr, "sys", true)
	sys.sub(t, "$SYS/broker/clients/connected", 0)
	b.publishSys(time.Now())
	m := next(t, sys.msgs)
	assert.Equal(t, "$SYS/broker/clients/connected", m.topic)
	assert.Equal(t, "2", m.payload)

	all.pub(t, "$SYS/broker/clients/connected", 1, true, "999") // refused, not routed
	all.pub(t, "marker", 0, false, "marker")
	assert.Equal(t, "marker", next(t, all.msgs).payload, "# saw a $SYS message")
	late := connectV3(t, addr, "late", true)
	late.sub(t, "$SYS/broker/version", 0)
	v := next(t, late.msgs)
	assert.Equal(t, Version, v.payload)
	assert.True(t, v.retained)
	assert.Equal(t, uint64(1), counter(b, "publish_to_dollar_topic"))
}
