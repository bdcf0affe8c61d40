package sink_test

import (
	"context"
	"testing"
	"time"

	"floodgate/capstone/sink"

	"github.com/stretchr/testify/require"
)

type discardSink struct{}

func (discardSink) Write(context.Context, []sink.Record) error { return nil }
func (discardSink) Close() error                               { return nil }

// BenchmarkSubmit measures what Submit costs the broker's goroutine.
//
//   - memory: the record goes to the memory queue (a slice append under
//     the mutex). No worker runs during the loop; afterwards one drains it.
//   - spool: every record goes to the spool (WriteThrough): one framed
//     write(2) per Submit.
//   - overload: the worker runs and delivers to a sink that takes
//     everything, but Submit is called flat out, faster than the worker
//     delivers; "spilled/op" shows how much of the stream went through the
//     spool once the memory queue filled.
func BenchmarkSubmit(b *testing.B) {
	r := sink.Record{Time: time.Now(), Topic: "plant/line1/events", QoS: 1, Payload: make([]byte, 128)}
	for _, c := range []struct {
		name string
		cfg  sink.Config
		run  bool // the worker runs during the loop
	}{
		{"memory", sink.Config{QueueSize: 1 << 30}, false},
		{"spool", sink.Config{WriteThrough: true}, false},
		{"overload", sink.Config{}, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			cfg := c.cfg
			cfg.SpoolDir, cfg.SpoolMaxBytes = b.TempDir(), 1<<30
			p, err := sink.New(cfg, discardSink{})
			require.NoError(b, err)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			start := func() { go func() { done <- p.Run(ctx) }() }
			if c.run {
				start()
			}
			for b.Loop() {
				if err := p.Submit(r); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			st := p.Stats()
			b.ReportMetric(float64(st.Spilled)/float64(b.N), "spilled/op")
			if !c.run {
				start()
			}
			for p.Stats().Delivered < st.Accepted { // drain, so Close has nothing to spill
				time.Sleep(time.Millisecond)
			}
			cancel()
			require.NoError(b, <-done)
			require.NoError(b, p.Close())
		})
	}
}
