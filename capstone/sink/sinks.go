package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"
)

// Sink is where the pipeline delivers records.
type Sink interface {
	// Write delivers recs, in order. nil means the sink accepted every
	// record; an error means the pipeline must count on none of them and
	// will send the whole batch again later, so a sink may see a record
	// twice (delivery is at least once) but never out of order.
	Write(ctx context.Context, recs []Record) error
	// Close releases the sink.
	Close() error
}

// FileConfig configures OpenFile. Its zero value works.
type FileConfig struct {
	// Path of the log file. Default "floodgate-sink.log".
	Path string
	// NoSync skips the fsync after each batch. Default false: Write returns
	// only after the batch is on disk.
	NoSync bool
}

// FileLog is the default sink: an append-only file of frames (see
// AppendFrame), each length-prefixed and CRC-32C checked. Each Write
// appends one batch with one write(2) and, unless NoSync, one fsync, so an
// accepted batch survives a power loss. It is safe for concurrent use.
type FileLog struct {
	noSync bool
	mu     sync.Mutex // guards f, buf
	f      *os.File
	buf    []byte
}

// OpenFile opens (creating) the log at cfg.Path and cuts off a torn tail
// left by a crash, so that new frames follow the last whole one.
func OpenFile(cfg FileConfig) (*FileLog, error) {
	if cfg.Path == "" {
		cfg.Path = "floodgate-sink.log"
	}
	f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sink open file: %w", err)
	}
	_, end, err := scanFrames(f)
	if err != nil && !errors.Is(err, ErrTorn) {
		f.Close()
		return nil, fmt.Errorf("sink open file %s: %w", cfg.Path, err)
	}
	if err := f.Truncate(end); err != nil {
		f.Close()
		return nil, fmt.Errorf("sink open file %s: %w", cfg.Path, err)
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("sink open file %s: %w", cfg.Path, err)
	}
	return &FileLog{noSync: cfg.NoSync, f: f}, nil
}

// Write implements Sink.
func (l *FileLog) Write(_ context.Context, recs []Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return fmt.Errorf("sink file write: %w", ErrClosed)
	}
	l.buf = l.buf[:0]
	for _, r := range recs {
		var err error
		if l.buf, err = AppendFrame(l.buf, r); err != nil {
			return err
		}
	}
	if _, err := l.f.Write(l.buf); err != nil {
		return fmt.Errorf("sink file write: %w", err)
	}
	if !l.noSync {
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("sink file sync: %w", err)
		}
	}
	return nil
}

// Close implements Sink.
func (l *FileLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return fmt.Errorf("sink file close: %w", ErrClosed)
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// ReadFile reads every whole record of a log written by FileLog (or a
// spool segment). A torn tail is left out and reported with ErrTorn.
func ReadFile(path string) ([]Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sink read file: %w", err)
	}
	recs, _, err := DecodeFrames(b, 0)
	return recs, err
}

// WebhookConfig configures NewWebhook.
type WebhookConfig struct {
	// URL receives the batches; http or https. Required.
	URL string
	// Client sends the requests. Default: a client with a 10s timeout.
	Client *http.Client
	// Header is added to every request (for example Authorization).
	Header http.Header
}

// ErrRejected is returned, wrapped with the status, when the webhook
// answers with a status that is not 2xx.
var ErrRejected = errors.New("sink: webhook rejected the batch")

// ErrPermanent is wrapped, by a Sink, into an error that sending the same
// batch again cannot fix (for the webhook: a 4xx answer other than 408 and
// 429). The pipeline moves such a batch to its dead-letter log instead of
// retrying it forever, and the breaker does not count it as a failure.
var ErrPermanent = errors.New("sink: batch refused for good")

// Webhook is an HTTP sink: each Write POSTs one JSON document,
// {"records":[{"time":...,"topic":...,"qos":...,"payload":"<base64>"},...]},
// and a 2xx answer means every record in it is accepted. A 4xx answer
// other than 408 and 429 is permanent (ErrPermanent); anything else is
// retried. It is safe for
// concurrent use.
type Webhook struct {
	url    string
	client *http.Client
	header http.Header
}

// NewWebhook checks cfg and returns the sink.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("sink webhook: URL %q must be http(s)://host/...: %w", cfg.URL, ErrInvalidConfig)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	return &Webhook{url: cfg.URL, client: cfg.Client, header: cfg.Header.Clone()}, nil
}

// WebhookBatch is the JSON document a Webhook POSTs.
type WebhookBatch struct {
	Records []Record `json:"records"`
}

// Write implements Sink.
func (w *Webhook) Write(ctx context.Context, recs []Record) error {
	body, err := json.Marshal(WebhookBatch{Records: recs})
	if err != nil {
		return fmt.Errorf("sink webhook: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("sink webhook: %w", err)
	}
	for k, v := range w.header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("sink webhook POST: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if c := resp.StatusCode; c >= 400 && c < 500 && c != http.StatusRequestTimeout && c != http.StatusTooManyRequests {
			return fmt.Errorf("sink webhook POST: status %d: %w (%w)", c, ErrRejected, ErrPermanent)
		}
		return fmt.Errorf("sink webhook POST: status %d: %w", resp.StatusCode, ErrRejected)
	}
	return nil
}

// Close implements Sink; it closes idle connections.
func (w *Webhook) Close() error {
	w.client.CloseIdleConnections()
	return nil
}
