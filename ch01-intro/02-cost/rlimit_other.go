//go:build !linux

package cost

import "errors"

func stackLimit() (uint64, error) { return 0, errors.New("cost: RLIMIT_STACK is read on Linux only") }
