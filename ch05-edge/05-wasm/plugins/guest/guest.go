//go:build wasip1

// Package guest is the plugin side of the ABI described in the 05-wasm
// package comment. A plugin is a main package that imports guest, sets
// Handler in an init function, and is built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o NAME.wasm .
//
// The module then exports alloc and handle (from this package) and
// _initialize (from the Go linker), and the host calls them.
package guest

import (
	"encoding/binary"
	"unsafe"
)

// Handler sees each message: its topic and payload. It returns the payload
// to forward (the input, a changed copy, or new bytes) and keep=false to drop
// the message. payload is only valid during the call.
var Handler func(topic string, payload []byte) (out []byte, keep bool)

// in is the buffer alloc hands to the host. It lives in a global so that the
// garbage collector keeps it while the host writes into it.
var in []byte

// out keeps the last result alive until the host has copied it.
var out []byte

// alloc returns the address of a buffer of size bytes for the host to write
// the next message into. The buffer is valid until the next call to alloc.
//
//go:wasmexport alloc
func alloc(size uint32) uint32 {
	if cap(in) < int(size) {
		in = make([]byte, size)
	}
	in = in[:cap(in)]
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(in))))
}

// handle decodes the message the host wrote at ptr (size bytes: a 2-byte
// big-endian topic length, the topic, the payload) and returns the result
// packed as address<<32 | length, or 0 to drop the message.
//
//go:wasmexport handle
func handle(ptr, size uint32) uint64 {
	msg := in[:size]
	if len(msg) < 2 || int(binary.BigEndian.Uint16(msg)) > len(msg)-2 {
		return 0
	}
	n := int(binary.BigEndian.Uint16(msg))
	topic := string(msg[2 : 2+n])
	res, keep := Handler(topic, msg[2+n:])
	if !keep {
		return 0
	}
	out = res
	if len(res) == 0 {
		// A kept, empty payload: any non-zero address with length 0.
		return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(in)))) << 32
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(res))))<<32 | uint64(len(res))
}
