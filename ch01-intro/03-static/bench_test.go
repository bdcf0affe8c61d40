package static

import (
	"context"
	"os"
	"testing"
	"time"
)

// BenchmarkStartup measures, for each build variant, the time from exec to
// the server's "listening on" line, and reports the binary's size.
func BenchmarkStartup(b *testing.B) {
	dir := b.TempDir()
	for _, v := range Variants {
		bin, err := Build(context.Background(), v, dir)
		if err != nil {
			b.Fatal(err)
		}
		fi, err := os.Stat(bin)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(v.Name, func(b *testing.B) {
			var ready time.Duration
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				p, err := Start(ctx, bin)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				ready += p.Ready
				if _, err := p.Stop(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(ready.Microseconds())/1000/float64(b.N), "ms-to-ready")
			b.ReportMetric(float64(fi.Size()), "bytes")
		})
	}
}
