package mqtt

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOverhead_MQTTvsHTTP counts the bytes on the wire for one telemetry
// reading sent as MQTT and as an HTTP/1.1 POST, to test the article's claim
// that MQTT is light on bandwidth. Counts, not timings: the figures are the
// same on every machine.
func TestOverhead_MQTTvsHTTP(t *testing.T) {
	needTasks(t)
	topic, payload := []byte("sensors/42/temp"), []byte(`{"t":21.5}`)
	enc := func(p Packet, v Version) []byte {
		b, err := p.AppendTo(nil, v)
		require.NoError(t, err)
		return b
	}
	qos0 := enc(&Publish{Topic: topic, Payload: payload}, V311)
	qos1 := enc(&Publish{QoS: 1, PacketID: 1, Topic: topic, Payload: payload}, V311)
	puback := enc(&PubAck{PacketID: 1}, V311)
	// MQTT 5.0: after the first message, a Topic Alias replaces the topic.
	alias := enc(&Publish{Properties: Properties{TopicAlias: 1}, Payload: payload}, V5)

	req, err := http.NewRequest(http.MethodPost, "http://gw.local/telemetry/sensors/42/temp", bytes.NewReader(payload))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	var httpReq bytes.Buffer
	require.NoError(t, req.Write(&httpReq))
	resp := &http.Response{StatusCode: http.StatusNoContent, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}}
	var httpResp bytes.Buffer
	require.NoError(t, resp.Write(&httpResp))

	rows := []struct {
		name string
		n    int
	}{
		{"MQTT 3.1.1 PUBLISH QoS 0", len(qos0)},
		{"MQTT 3.1.1 PUBLISH QoS 1 + PUBACK", len(qos1) + len(puback)},
		{"MQTT 5.0 PUBLISH QoS 0, Topic Alias", len(alias)},
		{"HTTP/1.1 POST + 204 response", httpReq.Len() + httpResp.Len()},
	}
	t.Logf("payload %d bytes, topic %d bytes", len(payload), len(topic))
	for _, r := range rows {
		t.Logf("%-38s %4d bytes on the wire, %4d of them overhead", r.name, r.n, r.n-len(payload))
	}
	require.Equal(t, 2+2+len(topic)+len(payload), len(qos0), "QoS 0: fixed header, topic length, topic, payload")
	require.Less(t, len(qos1)+len(puback), (httpReq.Len()+httpResp.Len())/4,
		fmt.Sprintf("MQTT QoS 1 round trip should be well under a quarter of HTTP's:\n%s%s", httpReq.Bytes(), httpResp.Bytes()))
}
