package sink_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"floodgate/capstone/sink"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func recs(from, to int) []sink.Record {
	var out []sink.Record
	for i := from; i < to; i++ {
		out = append(out, sink.Record{Time: time.Unix(int64(i), 0).UTC(), Topic: "t", QoS: 1, Payload: []byte{byte(i)}})
	}
	return out
}

func TestFileLogAppendsAndCutsTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sink.log")
	l, err := sink.OpenFile(sink.FileConfig{Path: path})
	require.NoError(t, err)
	require.NoError(t, l.Write(context.Background(), recs(0, 3)))
	require.NoError(t, l.Close())
	require.ErrorIs(t, l.Write(context.Background(), recs(3, 4)), sink.ErrClosed)

	// Half a frame at the end, as a crash mid-write leaves it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte{0, 0, 0, 40, 1, 2})
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, err = sink.ReadFile(path)
	require.ErrorIs(t, err, sink.ErrTorn)

	l, err = sink.OpenFile(sink.FileConfig{Path: path})
	require.NoError(t, err)
	require.NoError(t, l.Write(context.Background(), recs(3, 5)))
	require.NoError(t, l.Close())
	got, err := sink.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, recs(0, 5), got)
}

// TestWebhookPOST runs the webhook against a real HTTP server on loopback.
func TestWebhookPOST(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusNoContent)
	got := make(chan sink.WebhookBatch, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b sink.WebhookBatch
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" ||
			r.Header.Get("Authorization") != "Bearer k" || json.NewDecoder(r.Body).Decode(&b) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got <- b
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	wh, err := sink.NewWebhook(sink.WebhookConfig{URL: srv.URL + "/ingest", Header: http.Header{"Authorization": {"Bearer k"}},
		Client: &http.Client{Timeout: 5 * time.Second}})
	require.NoError(t, err)
	defer wh.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	require.NoError(t, wh.Write(ctx, recs(0, 3)))
	assert.Equal(t, recs(0, 3), (<-got).Records)
	status.Store(http.StatusServiceUnavailable)
	err = wh.Write(ctx, recs(3, 4))
	require.ErrorIs(t, err, sink.ErrRejected)
	assert.Contains(t, err.Error(), "503")
	assert.NotErrorIs(t, err, sink.ErrPermanent, "5xx is retried")
	<-got
	status.Store(http.StatusTooManyRequests)
	err = wh.Write(ctx, recs(3, 4))
	require.ErrorIs(t, err, sink.ErrRejected)
	assert.NotErrorIs(t, err, sink.ErrPermanent, "429 is retried")
	<-got
	status.Store(http.StatusUnprocessableEntity)
	err = wh.Write(ctx, recs(3, 4))
	require.ErrorIs(t, err, sink.ErrPermanent, "4xx is for good")
	<-got

	_, err = sink.NewWebhook(sink.WebhookConfig{URL: "ftp://x"})
	require.ErrorIs(t, err, sink.ErrInvalidConfig)
}
