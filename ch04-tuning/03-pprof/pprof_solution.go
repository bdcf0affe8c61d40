//go:build floodgate.solution

package pprof

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
)

// ParseLine parses "device,metric,value" without allocating. key is
// "device,metric" and shares line's memory.
func ParseLine(line []byte) (key []byte, value float64, err error) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	k := bytes.LastIndexByte(line, ',')
	if k < 0 {
		return nil, 0, fmt.Errorf("parse %q: %w", line, ErrSyntax)
	}
	key, val := line[:k], line[k+1:]
	dev, metric, ok := bytes.Cut(key, []byte{','})
	if !ok || len(dev) == 0 || len(metric) == 0 || bytes.IndexByte(metric, ',') >= 0 {
		return nil, 0, fmt.Errorf("parse %q: %w", line, ErrSyntax)
	}
	v, err := strconv.ParseFloat(string(val), 64) // string(val) does not escape
	if err != nil {
		return nil, 0, fmt.Errorf("parse %q: value: %w", line, ErrSyntax)
	}
	return key, v, nil
}

// audit hands rec to the auditor without blocking and without starting a
// goroutine: if AuditQueue records are already waiting, it drops rec and
// counts it.
func (i *Ingester) audit(rec AuditRecord) {
	select {
	case i.queue <- rec:
	default:
		i.dropped.Add(1) // the auditor is behind: shed, don't pile up
	}
}

// ListenPprof listens on addr, which must be a loopback address such as
// "127.0.0.1:6060", "[::1]:0" or "localhost:6060", and serves
// net/http/pprof there until Close. Any other address, including ":6060"
// (every interface), is refused with an error wrapping ErrNotLoopback.
func ListenPprof(addr string) (*PprofServer, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("pprof listen %q: %w", addr, err)
	}
	if host == "" {
		return nil, fmt.Errorf("pprof listen %q: every interface: %w", addr, ErrNotLoopback)
	}
	ips, err := net.DefaultResolver.LookupIPAddr(context.Background(), host)
	if err != nil {
		return nil, fmt.Errorf("pprof listen %q: %w", addr, err)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return nil, fmt.Errorf("pprof listen %q: %v: %w", addr, ip.IP, ErrNotLoopback)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof listen: %w", err)
	}
	return servePprof(ln), nil
}
