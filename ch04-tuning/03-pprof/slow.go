package pprof

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"sync"
)

// Slow is the handler as first written. Every line costs a regexp
// compilation; one mutex is held for the whole request; each request's
// audit record waits in a goroutine of its own for an auditor that writes
// one record at a time; and every body is kept. Close stops its goroutines.
type Slow struct {
	mu      sync.Mutex // guards last, history; held for the whole request
	last    map[string]float64
	history [][]byte // every body ever received

	audit chan AuditRecord // unbuffered: a sender waits for the auditor
	stop  chan struct{}
	wg    sync.WaitGroup // the auditor and every waiting sender
	once  sync.Once
	log   io.Writer
}

// NewSlow starts a Slow handler whose auditor writes to log.
func NewSlow(log io.Writer) *Slow {
	if log == nil {
		log = io.Discard
	}
	s := &Slow{last: map[string]float64{}, audit: make(chan AuditRecord), stop: make(chan struct{}), log: log}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case r := <-s.audit:
				fmt.Fprintf(s.log, "lines=%d failed=%d\n", r.Lines, r.Failed)
			case <-s.stop:
				return
			}
		}
	}()
	return s
}

// Close stops the auditor and releases every waiting sender.
func (s *Slow) Close() error {
	s.once.Do(func() { close(s.stop) })
	s.wg.Wait()
	return nil
}

func (s *Slow) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	s.history = append(s.history, body)
	var rec AuditRecord
	for _, line := range regexp.MustCompile(`\r?\n`).Split(string(body), -1) {
		if line == "" {
			continue
		}
		re := regexp.MustCompile(`^([^,]+),([^,]+),([-+0-9.eE]+)$`)
		m := re.FindStringSubmatch(line)
		if m == nil {
			rec.Failed++
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			rec.Failed++
			continue
		}
		s.last[m[1]+","+m[2]] = v
		rec.Lines++
	}
	s.wg.Add(1)
	go func() { // one goroutine per request, parked until the auditor takes it
		defer s.wg.Done()
		select {
		case s.audit <- rec:
		case <-s.stop:
		}
	}()
	fmt.Fprintf(w, "%d\n", rec.Lines)
}
