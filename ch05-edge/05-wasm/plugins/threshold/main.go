//go:build wasip1

// Command threshold is a filter plugin: it forwards a reading unchanged when
// it is at least 30 and drops it otherwise (and drops anything that is not
// a number), so that only the hot readings leave the gateway.
package main

import (
	"strconv"

	"floodgate/ch05-edge/05-wasm/plugins/guest"
)

const limit = 30

func init() {
	guest.Handler = func(_ string, payload []byte) ([]byte, bool) {
		v, err := strconv.ParseFloat(string(payload), 64)
		if err != nil || v < limit {
			return nil, false
		}
		return payload, true
	}
}

func main() {}
