//go:build floodgate.solution

package broker

import (
	"testing"

	"floodgate/capstone/ops"
	"github.com/stretchr/testify/assert"
)

// The per-QoS counter names made once are the ones building them would
// give, and naming one allocates nothing.
func TestQoSCounter(t *testing.T) {
	for q := range byte(4) {
		assert.Equal(t, "messages_in_"+ops.QoSLabel(q), qosCounter(&messagesIn, "messages_in_", q))
		assert.Equal(t, "messages_out_"+ops.QoSLabel(q), qosCounter(&messagesOut, "messages_out_", q))
	}
	var sink string
	allocs := testing.AllocsPerRun(100, func() {
		for q := range byte(3) {
			sink = qosCounter(&messagesIn, "messages_in_", q)
		}
	})
	assert.Zero(t, allocs)
	assert.Equal(t, "messages_in_2", sink)
}
