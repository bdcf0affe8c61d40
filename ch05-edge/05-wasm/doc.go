// Package wasm runs message filters and transforms as WebAssembly plugins,
// inside a sandbox, with wazero (a WebAssembly runtime written in pure Go).
//
// A gateway operator wants to drop, rewrite or enrich messages with code
// that is not part of the gateway binary and that the gateway does not
// trust. Each plugin is a Go program built for GOOS=wasip1 GOARCH=wasm with
// -buildmode=c-shared; the host compiles it once and instantiates it many
// times. An instance owns its linear memory: it cannot read or write the
// host's memory, it cannot take more than Config.MemoryLimitPages, and a call
// into it that runs past Config.CallTimeout is stopped.
//
// # The ABI between host and plugin
//
// A plugin module exports three functions (plugins/guest implements the
// plugin side):
//
//	_initialize()                   run once per instance: Go's runtime and init functions
//	alloc(size i32) i32             returns the address of a guest buffer of at least size bytes
//	handle(ptr i32, size i32) i64   handles the message at ptr; returns address<<32 | length, or 0 to drop
//
// The host encodes a Message as a 2-byte big-endian topic length, the topic
// and the payload (see encodeMessage), calls alloc, writes the bytes into
// linear memory at the returned address, calls handle, and copies the result
// out of linear memory before the next call can overwrite it.
//
// An Instance is not safe for concurrent use: one call at a time. A Pool
// holds many instances of one plugin and is safe for concurrent use.
package wasm

import (
	"errors"
	"sync"
	"time"
)

// Defaults for the zero Config.
const (
	// DefaultMemoryLimitPages is 256 pages of 64 KiB: 16 MiB per instance.
	DefaultMemoryLimitPages = 256
	// DefaultCallTimeout bounds one Handle call.
	DefaultCallTimeout = 100 * time.Millisecond
)

// Config is the sandbox of every instance a Host creates. The zero value
// works: each field's zero means its default.
type Config struct {
	// MemoryLimitPages caps each instance's linear memory, in 64 KiB pages
	// (at most 65536, i.e. 4 GiB). Zero means DefaultMemoryLimitPages. A Go
	// plugin needs about 40 pages just to start.
	MemoryLimitPages uint32
	// CallTimeout bounds one call to Instance.Handle. Zero means
	// DefaultCallTimeout.
	CallTimeout time.Duration
	// CacheDir, if set, is a directory where compiled plugins are kept
	// (wazero's file compilation cache), so that loading the same plugin
	// again, in this process or the next, skips compiling it. Empty means
	// no cache.
	CacheDir string
}

// Message is what a plugin sees: an MQTT topic and its payload.
type Message struct {
	Topic   string
	Payload []byte
}

// Result is a plugin's verdict on a Message.
type Result struct {
	// Drop reports that the plugin filtered the message out.
	Drop bool
	// Payload is the payload to forward when Drop is false. It is a copy:
	// the caller owns it.
	Payload []byte
}

// PoolStats counts what a Pool has done.
type PoolStats struct {
	// Instances is the number of live instances in the pool.
	Instances int
	// Replaced counts instances that failed (timeout, crash, bad result)
	// and were closed and replaced by a fresh one.
	Replaced int
}

// Pool holds a fixed number of instances of one plugin and lends them out,
// one call at a time each. It is safe for concurrent use. Create it with
// NewPool.
type Pool struct {
	plugin *Plugin

	// slots holds one entry per slot of the pool that is not lent out: an
	// idle instance, or nil for a slot whose instance failed and could not
	// be replaced yet. Its capacity is the pool's size.
	slots chan *Instance
	// done is closed by Close.
	done chan struct{}

	mu       sync.Mutex // guards the fields below
	live     int        // slots holding an instance, idle or lent out
	replaced int        // see PoolStats.Replaced
	closed   bool       // Close has been called
}

// Errors returned by this package. Each is wrapped with the operation that
// failed; test with errors.Is.
var (
	// ErrBadConfig: a Config field is out of range.
	ErrBadConfig = errors.New("wasm: bad config")
	// ErrBadPlugin: the bytes are not a WebAssembly module, or the module
	// does not export the ABI's functions.
	ErrBadPlugin = errors.New("wasm: bad plugin")
	// ErrBadMessage: the message cannot be encoded (topic over 65535 bytes).
	ErrBadMessage = errors.New("wasm: bad message")
	// ErrBadResult: the plugin returned an address or length outside its
	// linear memory.
	ErrBadResult = errors.New("wasm: bad result from plugin")
	// ErrTimeout: the call ran past Config.CallTimeout and was stopped.
	ErrTimeout = errors.New("wasm: plugin call timed out")
	// ErrCrashed: the plugin trapped or exited: a panic, running out of its
	// memory limit, or any other fatal error. The error text carries the
	// first line the plugin wrote to stderr.
	ErrCrashed = errors.New("wasm: plugin crashed")
	// ErrClosed: the instance or pool is closed. An instance closes itself
	// after any failed call, because the guest's state can no longer be
	// trusted.
	ErrClosed = errors.New("wasm: closed")
	// ErrNotImplemented is what the stubs return until you write them.
	ErrNotImplemented = errors.New("wasm: not implemented")
)
