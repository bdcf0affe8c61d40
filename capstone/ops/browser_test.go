package ops_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"floodgate/capstone/ops"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chromium runs Debian's headless chromium on url with extra flags and
// returns its standard output. It skips the test when chromium is absent.
func chromium(t *testing.T, url string, extra ...string) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("capstone/ops: chromium is not installed (apt-get install chromium); skipping the status page browser test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	args = append(append(args, extra...), url)
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "chromium: %s", stderr.String())
	return string(out)
}

// serve runs an ops server for m on 127.0.0.1:0 until the test ends.
func serve(t *testing.T, m *ops.Metrics) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s, err := ops.NewServer(ops.ServerConfig{Metrics: m, Interval: 250 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return "http://" + ln.Addr().String()
}

// text returns the text of the element with id in the dumped DOM.
func text(t *testing.T, dom, id string) string {
	t.Helper()
	re := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`)
	m := re.FindStringSubmatch(dom)
	require.NotNil(t, m, "no element #%s in the page", id)
	return m[1]
}

// TestStatusPageInChromium loads the status page in headless chromium and
// checks that the figures the server streams are the figures the page
// shows: the script ran, took the SSE snapshots and drew them.
func TestStatusPageInChromium(t *testing.T) {
	m := ops.NewMetrics()
	busy(m)
	// max=3: three snapshots, then the stream ends and the page finishes
	// loading, so --virtual-time-budget can run out and the DOM is dumped.
	url := serve(t, m) + "/status?max=3"
	dom := chromium(t, url, "--virtual-time-budget=5000", "--dump-dom")

	assert.Regexp(t, `data-updates="3"`, dom, "the page drew the three snapshots it was sent")
	assert.Equal(t, "1,234", text(t, dom, "connections"))
	assert.Equal(t, "1,300", text(t, dom, "accepted"))
	assert.Equal(t, "8", text(t, dom, "refused-total"))
	assert.Equal(t, "600", text(t, dom, "in-total"))
	assert.Equal(t, "900", text(t, dom, "out-total"))
	assert.Equal(t, "9", text(t, dom, "drops-total"))
	assert.Equal(t, "42", text(t, dom, "queue-depth"))
	assert.Equal(t, "99 records", text(t, dom, "sink-spool"))
	assert.Equal(t, "1,250", text(t, dom, "sessions"))
	assert.Regexp(t, `^[0-9.]+ (B|KiB|MiB)$`, text(t, dom, "bytes-per-conn"))
	assert.Equal(t, "paused after 3 updates", text(t, dom, "link"))
	assert.Regexp(t, `<li class="open" data-breaker="sink"><span>breaker sink</span><span>open</span></li>`, dom)
	assert.Regexp(t, `<th>slow_consumer</th><td class="n">7</td>`, dom)
	assert.Regexp(t, `<th>publish</th><td class="n">11</td>`, dom)
}

// TestStatusPageScreenshot writes a screenshot of the page under load to
// $FLOODGATE_SCREENSHOT, for the operator guide. It runs only when that
// variable is set.
func TestStatusPageScreenshot(t *testing.T) {
	out := os.Getenv("FLOODGATE_SCREENSHOT")
	if out == "" {
		t.Skip("set FLOODGATE_SCREENSHOT=/path/to.png to take a screenshot of the status page")
	}
	m := ops.NewMetrics()
	busy(m)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // some traffic, so the chart moves
		defer close(done)
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			m.MessagesIn.WithLabelValues("1").Add(float64(400 + (i*37)%300))
			m.MessagesOut.WithLabelValues("1").Add(float64(900 + (i*53)%500))
			m.BytesIn.Add(60000)
			m.BytesOut.Add(140000)
		}
	}()
	defer func() { close(stop); <-done }()
	url := serve(t, m) + "/status?max=40"
	chromium(t, url, "--window-size=1280,1000", "--virtual-time-budget=60000", "--screenshot="+out)
	_, err := os.Stat(out)
	require.NoError(t, err)
}
