package load

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Sample is one point of a run's timeline, taken every 250 ms.
type Sample struct {
	T        float64 `json:"t"`        // seconds since the start
	Ready    int64   `json:"ready"`    // connections ready (connected and subscribed)
	Sent     int64   `json:"sent"`     // messages published so far
	Received int64   `json:"received"` // messages delivered so far
	RxPerSec float64 `json:"rx_per_s"` // deliveries per second since the last sample
	// BrokerRSS is the broker's VmRSS in bytes (0 without a broker PID).
	BrokerRSS int64 `json:"broker_rss,omitempty"`
	// Slab is the machine's kernel slab in bytes (/proc/meminfo).
	Slab int64 `json:"slab,omitempty"`
}

// progress samples the counters for the timeline and shows them on w: a
// redrawn bar on a terminal, otherwise a plain line per second.
type progress struct {
	s        *shared
	w        io.Writer
	terminal bool
	done     chan struct{}
	wg       sync.WaitGroup
	// Written by the goroutine only, then read after wg.Wait.
	samples []Sample
	start   time.Time
	lastT   time.Time
	lastRx  int64
}

func startProgress(s *shared, w io.Writer, terminal bool) *progress {
	now := time.Now()
	p := &progress{s: s, w: w, terminal: terminal, done: make(chan struct{}), start: now, lastT: now}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.loop()
	}()
	return p
}

// stop ends the sampling and returns the timeline.
func (p *progress) stop() []Sample {
	close(p.done)
	p.wg.Wait()
	last := p.sample(time.Now()) // the last point, also for runs shorter than a tick
	if p.w != nil {
		p.show(last)
		if p.terminal {
			fmt.Fprintln(p.w)
		}
	}
	return p.samples
}

func (p *progress) loop() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for i := 1; ; i++ {
		select {
		case <-p.done:
			return
		case now := <-t.C:
			smp := p.sample(now)
			if p.w != nil && (p.terminal || i%4 == 1) { // plain: at 0.25 s, then each second
				p.show(smp)
			}
		}
	}
}

// sample appends a point to the timeline and returns it.
func (p *progress) sample(now time.Time) Sample {
	s := p.s
	rx := s.received.Load()
	smp := Sample{T: now.Sub(p.start).Seconds(), Ready: s.ready.Load(), Sent: s.sent.Load(), Received: rx}
	if pid := s.cfg.BrokerPID; pid != 0 {
		smp.BrokerRSS, _ = ReadRSS(pid)
	}
	smp.Slab, _, _ = ReadSlab()
	if d := now.Sub(p.lastT).Seconds(); d > 0 {
		smp.RxPerSec = float64(rx-p.lastRx) / d
	}
	p.lastRx, p.lastT = rx, now
	p.samples = append(p.samples, smp)
	return smp
}

func (p *progress) show(smp Sample) {
	s := p.s
	s.mu.Lock()
	phase, total, since := s.phase, s.total, s.since
	s.mu.Unlock()
	done := smp.Ready
	if phase == "publish" || phase == "hold" {
		done = time.Since(since).Milliseconds() // total is the phase's length in ms
	}
	line := fmt.Sprintf("%5.1fs  %-18s ready %d  failed %d  lost %d  sent %d  rcvd %d (%s/s)",
		smp.T, phase, smp.Ready, s.failed.Load(), s.lost.Load(), smp.Sent, smp.Received, si(smp.RxPerSec))
	if phase == "sweep" {
		line += fmt.Sprintf("  swept %d/%d", s.sweepRx.Load(), total)
	}
	if !p.terminal {
		fmt.Fprintln(p.w, line)
		return
	}
	bar := ""
	if total > 0 {
		const width = 24
		f := min(float64(done)/float64(total), 1)
		n := int(f * width)
		bar = "[" + strings.Repeat("#", n) + strings.Repeat("-", width-n) + "] "
	}
	fmt.Fprintf(p.w, "\r\033[K%s%s", bar, line)
}

// si formats v with a K/M suffix.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fK", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
