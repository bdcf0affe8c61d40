//go:build wasip1

// Command runaway is a badly behaved plugin for the sandbox tests. Its
// payload picks the misbehaviour:
//
//	loop    spin forever
//	grow    keep allocating, 4 MiB at a time, up to 256 MiB
//	panic   panic
//	badptr  return a result that points outside linear memory
//
// Anything else is echoed back unchanged.
package main

import (
	"unsafe"

	"floodgate/ch05-edge/05-wasm/plugins/guest"
)

var (
	spins uint64
	hoard [][]byte
)

func init() {
	guest.Handler = handle
}

func handle(_ string, payload []byte) ([]byte, bool) {
	switch string(payload) {
	case "loop":
		for {
			spins++
		}
	case "grow":
		for range 64 {
			b := make([]byte, 4<<20)
			b[0] = 1
			hoard = append(hoard, b)
		}
	case "panic":
		panic("runaway: asked to panic")
	case "badptr":
		// A 64 MiB result: it runs far past the end of linear memory.
		return unsafe.Slice(unsafe.SliceData(payload), 64<<20), true
	}
	return payload, true
}

func main() {}
