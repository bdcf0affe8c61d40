// Package ingest is a TCP ingestion server for device readings: the first
// server of the workbook, and the one every later chapter improves on.
//
// Devices connect over TCP and send one reading per line:
//
//	device_id,metric,value[,unix_ms]
//
// The server gives each connection its own goroutine, bounds the length of
// a line, counts and skips malformed lines, closes a connection that sends
// an oversized line (telling the peer why), keeps per-device statistics,
// backs off when Accept fails for lack of file descriptors, and shuts down
// without losing a line it has read or leaking a goroutine.
package ingest

import (
	"errors"
	"log/slog"
	"time"
)

// Reading is one parsed line.
type Reading struct {
	DeviceID string
	Metric   string
	Value    float64
	// Time is the device's timestamp, or the zero Time when the line has
	// none.
	Time time.Time
}

// Limits of the line protocol.
const (
	MaxIDBytes = 64 // device ids and metric names: 1 to 64 bytes of [A-Za-z0-9_.:-]
)

var (
	// ErrMalformed is wrapped by every error ParseLine returns.
	ErrMalformed = errors.New("malformed line")
	// ErrLineTooLong is the reason a connection is closed when a line
	// exceeds Config.MaxLineBytes.
	ErrLineTooLong = errors.New("line too long")
	// ErrServerClosed is returned by Serve after Shutdown.
	ErrServerClosed = errors.New("ingest: server closed")
)

// Config configures a Server. The zero value works.
type Config struct {
	// MaxLineBytes bounds a line, its newline included. A longer line
	// closes its connection. Default 256.
	MaxLineBytes int
	// IdleTimeout closes a connection that sends nothing for this long.
	// Default 2 minutes.
	IdleTimeout time.Duration
	// MaxAcceptBackoff caps the wait between retries when Accept fails with
	// a temporary error such as EMFILE. Default 1 second; the first wait is
	// 5 ms and each failure doubles it.
	MaxAcceptBackoff time.Duration
	// Handle, if set, receives every valid reading, from the connection's
	// own goroutine. It must be safe for concurrent use.
	Handle func(Reading)
	// Logger receives connection errors. Default: discard.
	Logger *slog.Logger
}

// Stats are the server's counters.
type Stats struct {
	Accepted    int64 // connections accepted
	Active      int64 // connections open now
	Readings    int64 // valid lines
	Malformed   int64 // lines skipped as malformed
	Oversized   int64 // connections closed for an oversized line
	AcceptRetry int64 // temporary Accept errors retried
}

// DeviceStats are one device's counters.
type DeviceStats struct {
	Readings int64
	Last     Reading // the latest reading
	LastSeen time.Time
}
