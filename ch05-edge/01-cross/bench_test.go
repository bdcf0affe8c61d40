package cross

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// benchBuild builds edged for env with -ldflags="-s -w" (no symbol table,
// no DWARF: what you would ship to a gateway) into dir.
func benchBuild(b *testing.B, dir string, env []string) (path string, size int64) {
	b.Helper()
	path = filepath.Join(dir, "edged")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", path, "./cmd/edged")
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return path, fi.Size()
}

type benchTarget struct {
	name     string
	env      []string
	emulator string
}

func benchTargets(b *testing.B) []benchTarget {
	ts := []benchTarget{{name: "native-" + runtime.GOARCH, env: []string{"CGO_ENABLED=0"}}}
	for _, t := range Matrix {
		emu, err := exec.LookPath(Emulator(t))
		if err != nil {
			b.Logf("skipping %v: %s not found (apt-get install qemu-user-static)", t, Emulator(t))
			continue
		}
		ts = append(ts, benchTarget{name: t.GOARCH + t.GOARM + t.GOMIPS, env: wantEnv[t.String()], emulator: emu})
	}
	return ts
}

// BenchmarkStartup measures the time from exec to the readiness line (for
// an emulated target this includes qemu's own start-up and translation of
// the Go runtime's init) and reports the stripped binary's size.
//
//	go test -run '^$' -bench Startup -benchtime 10x ./01-cross/
func BenchmarkStartup(b *testing.B) {
	for _, tg := range benchTargets(b) {
		b.Run(tg.name, func(b *testing.B) {
			bin, size := benchBuild(b, b.TempDir(), tg.env)
			b.ResetTimer()
			for range b.N {
				e, err := Launch(context.Background(), tg.emulator, bin, time.Minute, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := e.Stop(30 * time.Second); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(size), "bytes")
		})
	}
}

// BenchmarkConns800 holds 800 connections open to one edged and, per
// iteration, sends one reading on every connection at once and waits for
// all 800 replies. It reports the 50th and 99th percentile round trip.
// Under qemu this measures emulation on this host, not a Raspberry Pi.
//
//	go test -run '^$' -bench Conns800 -benchtime 20x ./01-cross/
func BenchmarkConns800(b *testing.B) {
	const n = 800
	for _, tg := range benchTargets(b) {
		if tg.name != "native-"+runtime.GOARCH && tg.name != "arm64" && tg.name != "arm7" {
			continue
		}
		b.Run(tg.name, func(b *testing.B) {
			bin, _ := benchBuild(b, b.TempDir(), tg.env)
			e, err := Launch(context.Background(), tg.emulator, bin, time.Minute, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Stop(30 * time.Second)
			conns := make([]net.Conn, n)
			readers := make([]*bufio.Reader, n)
			for i := range conns {
				c, err := net.DialTimeout("tcp", e.Addr.String(), 10*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Minute))
				conns[i], readers[i] = c, bufio.NewReader(c)
			}
			lat := make([]time.Duration, 0, n*b.N)
			var mu sync.Mutex
			b.ResetTimer()
			for range b.N {
				var wg sync.WaitGroup
				for i := range conns {
					wg.Add(1)
					go func() {
						defer wg.Done()
						start := time.Now()
						if _, err := conns[i].Write([]byte("dev temp 21.5\n")); err != nil {
							b.Error(err)
							return
						}
						if _, err := readers[i].ReadString('\n'); err != nil {
							b.Error(err)
							return
						}
						d := time.Since(start)
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					}()
				}
				wg.Wait()
			}
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}
