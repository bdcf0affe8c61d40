//go:build wasip1

// Command envelope is a transform plugin: it wraps a numeric reading into a
// small JSON document, {"topic":"...","value":...}, and drops payloads that
// are not numbers.
package main

import (
	"strconv"

	"floodgate/ch05-edge/05-wasm/plugins/guest"
)

var buf []byte

func init() {
	guest.Handler = func(topic string, payload []byte) ([]byte, bool) {
		v, err := strconv.ParseFloat(string(payload), 64)
		if err != nil {
			return nil, false
		}
		buf = append(buf[:0], `{"topic":`...)
		buf = strconv.AppendQuote(buf, topic)
		buf = append(buf, `,"value":`...)
		buf = strconv.AppendFloat(buf, v, 'g', -1, 64)
		buf = append(buf, '}')
		return buf, true
	}
}

func main() {}
