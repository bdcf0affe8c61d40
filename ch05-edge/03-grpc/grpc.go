//go:build !floodgate.solution

package grpc

import (
	"context"
	"net"

	"floodgate/ch05-edge/03-grpc/devicepb"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Register adds a device and returns it with its serial (1, 2, ... in
// registration order). INVALID_ARGUMENT for an empty id or one longer than
// MaxIDLen bytes, ALREADY_EXISTS for a taken id, RESOURCE_EXHAUSTED when
// Config.MaxDevices are registered.
func (s *Server) Register(ctx context.Context, req *devicepb.RegisterRequest) (*devicepb.Device, error) {
	// TODO(Task 1): check the id, then under s.mu check for a duplicate and
	// the limit, take the next serial and store the device.
	return nil, status.Error(codes.Unimplemented, "TODO: Register")
}

// GetDevice returns a registered device, or NOT_FOUND.
func (s *Server) GetDevice(ctx context.Context, req *devicepb.GetDeviceRequest) (*devicepb.Device, error) {
	// TODO(Task 1): look the device up under s.mu.
	return nil, status.Error(codes.Unimplemented, "TODO: GetDevice")
}

// StreamTelemetry sends Sample{seq: 1, 2, ...} with value
// Config.Source(id, seq), one per interval_ms, until max_samples were sent
// (then it returns nil), the client's context ends (the status of that:
// CANCELLED or DEADLINE_EXCEEDED), or Shutdown is called (UNAVAILABLE).
// NOT_FOUND for an unknown device, INVALID_ARGUMENT for an interval
// outside 1..MaxIntervalMS.
func (s *Server) StreamTelemetry(req *devicepb.TelemetryRequest, stream devicepb.DeviceManager_StreamTelemetryServer) error {
	// TODO(Task 2): validate, then a ticker loop that selects on
	// stream.Context().Done(), s.stopping and the tick, and Sends.
	return status.Error(codes.Unimplemented, "TODO: StreamTelemetry")
}

// Run serves the service on ln until ctx ends, then stops gracefully: it
// calls Shutdown so telemetry streams end with UNAVAILABLE, lets calls in
// flight finish for up to Config.Grace, and then closes what is left. It
// closes ln. It returns nil after a stop that ctx asked for, or the error
// that stopped serving.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	// TODO(Task 3): grpc.NewServer, register s, Serve in a goroutine; when
	// ctx ends: Shutdown, GracefulStop bounded by s.cfg.Grace, then Stop.
	return ErrNotImplemented
}
