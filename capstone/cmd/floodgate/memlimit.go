package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// errMemoryLimit is wrapped by parseMemoryLimit for a value it cannot read.
var errMemoryLimit = errors.New("want bytes, optionally with a unit B, KiB, MiB, GiB or TiB (e.g. 512MiB); 0: none")

// parseMemoryLimit reads -memory-limit: a byte count with an optional unit
// (B, KiB, MiB, GiB, TiB, as GOMEMLIMIT writes them). 0 means none: the
// Go runtime's default, or GOMEMLIMIT from the environment, stands.
//
// The limit is a soft one (runtime/debug.SetMemoryLimit): the collector
// runs as often as it must to keep the Go runtime's memory under it, and
// no more than that: GOGC still sets how much the heap may grow above the
// live set while it is under the limit. A broker holding many idle
// connections has a large live set (their sessions) and little garbage,
// so the default GOGC=100 lets its heap grow to twice the live set before
// a collection: set the limit a little above the live set to keep that
// headroom small (BENCHMARKS.md, "Memory per connection"). Set too low, the
// collector runs all the time: the runtime caps it at about half the CPU
// and lets the heap pass the limit rather than stall.
func parseMemoryLimit(s string) (int64, error) {
	s = strings.TrimSpace(s)
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	unit := s[len(num):]
	shift := 0
	switch unit {
	case "", "B":
	case "KiB":
		shift = 10
	case "MiB":
		shift = 20
	case "GiB":
		shift = 30
	case "TiB":
		shift = 40
	default:
		return 0, fmt.Errorf("-memory-limit %q: unit %q: %w", s, unit, errMemoryLimit)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("-memory-limit %q: %w", s, errMemoryLimit)
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("-memory-limit %q: too large: %w", s, errMemoryLimit)
	}
	return n << shift, nil
}
