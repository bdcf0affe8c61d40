// Package grpc is a device-management service for an edge gateway, over
// gRPC: two unary calls (Register, GetDevice) and a server-streaming
// telemetry call, with status codes that say what went wrong, streams that
// end when the client's deadline passes, and a graceful stop that does not
// wait forever for streams that never end on their own.
//
// The API is devicepb/device.proto; devicepb holds the code protoc
// generated from it (`make generate` regenerates it). Server implements
// devicepb.DeviceManagerServer; Run serves it on a listener until its
// context ends.
package grpc

import (
	"errors"
	"sync"
	"time"

	"floodgate/ch05-edge/03-grpc/devicepb"
)

// Limits and defaults.
const (
	MaxIDLen          = 64              // longest device id, in bytes
	DefaultMaxDevices = 10000           // Config.MaxDevices when 0
	DefaultGrace      = 5 * time.Second // Config.Grace when 0
	MaxIntervalMS     = 60000           // longest telemetry interval
)

// Config configures a Server. Its zero value works.
type Config struct {
	// MaxDevices caps the registry; Register answers RESOURCE_EXHAUSTED
	// beyond it. 0 means DefaultMaxDevices.
	MaxDevices int
	// Source produces the value of sample seq (from 1) of a device.
	// nil means Sawtooth. It must be safe for concurrent use.
	Source func(deviceID string, seq uint64) float64
	// Grace is how long Run waits for calls in flight once its context
	// ends, before it cuts the rest off. 0 means DefaultGrace.
	Grace time.Duration
}

// Sawtooth is the default telemetry source: seq mod 100, as a float.
func Sawtooth(_ string, seq uint64) float64 { return float64(seq % 100) }

// ErrNotImplemented is what the stubs return.
var ErrNotImplemented = errors.New("grpc: not implemented")

// Server is the DeviceManager service. It is safe for concurrent use by
// the gRPC server's goroutines. Create it with New.
type Server struct {
	devicepb.UnimplementedDeviceManagerServer

	cfg Config // with defaults filled in; read-only after New

	mu      sync.Mutex                  // guards devices and serial
	devices map[string]*devicepb.Device // by device id; values never modified
	serial  uint64                      // the last serial handed out

	stopping chan struct{} // closed by Shutdown: telemetry streams end
	stopOnce sync.Once
}

// New returns a Server for cfg, with its defaults filled in (cfg itself is
// not changed).
func New(cfg Config) *Server {
	if cfg.MaxDevices <= 0 {
		cfg.MaxDevices = DefaultMaxDevices
	}
	if cfg.Source == nil {
		cfg.Source = Sawtooth
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	return &Server{cfg: cfg, devices: make(map[string]*devicepb.Device), stopping: make(chan struct{})}
}

// Shutdown tells every telemetry stream, current and future, to end with
// UNAVAILABLE. Run calls it when its context ends; it is safe to call more
// than once.
func (s *Server) Shutdown() {
	s.stopOnce.Do(func() { close(s.stopping) })
}
