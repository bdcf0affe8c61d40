package load

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// ErrNotLoopback is returned for any target or source address outside
// 127.0.0.0/8. The load generator never sends a packet off this machine.
var ErrNotLoopback = errors.New("load: address is not in 127.0.0.0/8")

// loopback is the only network the load generator talks to.
var loopback = netip.MustParsePrefix("127.0.0.0/8")

// MaxSources is the largest number of source addresses one run spreads its
// connections over (a /16 inside 127.0.0.0/8).
const MaxSources = 1 << 16

// ParseTarget parses a broker address "IP:port" and returns it only if IP
// is in 127.0.0.0/8 and port is not 0. The host must be a literal address,
// or "localhost", which means 127.0.0.1: a name that resolves elsewhere is
// refused without a lookup.
func ParseTarget(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("load: target %q: %w", s, err)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("load: target %q: host must be a literal 127.x.y.z address: %w", s, ErrNotLoopback)
	}
	ip = ip.Unmap()
	if !loopback.Contains(ip) {
		return netip.AddrPort{}, fmt.Errorf("load: target %q: %w", s, ErrNotLoopback)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return netip.AddrPort{}, fmt.Errorf("load: target %q: bad port", s)
	}
	return netip.AddrPortFrom(ip, uint16(p)), nil
}

// Sources returns the source addresses that connections are spread over:
// the first n usable addresses of prefix, which must lie inside 127.0.0.0/8.
// Addresses whose last byte is 0 or 255 are skipped, as is 127.0.0.1 (the
// address a broker usually listens on), so that the spread is visible in
// `ss` output. n must be between 1 and MaxSources.
func Sources(prefix string, n int) ([]netip.Addr, error) {
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("load: sources %q: %w", prefix, err)
	}
	p = p.Masked()
	if !p.Addr().Is4() || p.Bits() < loopback.Bits() || !loopback.Contains(p.Addr()) {
		return nil, fmt.Errorf("load: sources %q: %w", prefix, ErrNotLoopback)
	}
	if n < 1 || n > MaxSources {
		return nil, fmt.Errorf("load: sources: count %d out of range [1, %d]", n, MaxSources)
	}
	out := make([]netip.Addr, 0, n)
	for a := p.Addr(); p.Contains(a) && len(out) < n; a = a.Next() {
		b := a.As4()
		if b[3] == 0 || b[3] == 255 || a == netip.AddrFrom4([4]byte{127, 0, 0, 1}) {
			continue
		}
		out = append(out, a)
	}
	if len(out) < n {
		return nil, fmt.Errorf("load: sources %q holds only %d usable addresses, %d wanted", prefix, len(out), n)
	}
	return out, nil
}
