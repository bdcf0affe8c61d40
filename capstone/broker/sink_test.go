//go:build floodgate.solution

package broker

import (
	"sync"
	"testing"

	"floodgate/capstone/sink"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeSink records what the broker submits; it refuses topic "full".
type fakeSink struct {
	mu   sync.Mutex
	recs []sink.Record
}

func (f *fakeSink) Match(topic string) bool { return topic == "meter/1" || topic == "full" }

func (f *fakeSink) Submit(r sink.Record) error {
	if r.Topic == "full" {
		return sink.ErrFull
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs = append(f.recs, r)
	return nil
}

// Messages on the sink's topics are submitted to it before the publisher's
// PUBACK; a refusal is counted and the message is still delivered.
func TestSink_MatchingMessagesSubmitted(t *testing.T) {
	fs := &fakeSink{}
	b, addr := startBroker(t, Config{Sink: fs})
	c := connectV3(t, addr, "meter", true)
	c.sub(t, "full", 1)
	c.pub(t, "meter/1", 1, false, "42 kWh")
	c.pub(t, "meter/2", 1, false, "not sunk")
	c.pub(t, "full", 1, false, "refused")
	assert.Equal(t, "refused", next(t, c.msgs).payload)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	require.Len(t, fs.recs, 1)
	assert.Equal(t, "meter/1", fs.recs[0].Topic)
	assert.Equal(t, "meter", fs.recs[0].ClientID)
	assert.Equal(t, "42 kWh", string(fs.recs[0].Payload))
	assert.Equal(t, uint64(1), counter(b, "sink_refused"))
}
