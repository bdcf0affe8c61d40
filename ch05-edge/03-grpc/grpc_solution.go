//go:build floodgate.solution

package grpc

import (
	"context"
	"fmt"
	"net"
	"time"

	"floodgate/ch05-edge/03-grpc/devicepb"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Register adds a device and returns it with its serial (1, 2, ... in
// registration order). INVALID_ARGUMENT for an empty id or one longer than
// MaxIDLen bytes, ALREADY_EXISTS for a taken id, RESOURCE_EXHAUSTED when
// Config.MaxDevices are registered.
func (s *Server) Register(ctx context.Context, req *devicepb.RegisterRequest) (*devicepb.Device, error) {
	id := req.GetDeviceId()
	if id == "" || len(id) > MaxIDLen {
		return nil, status.Errorf(codes.InvalidArgument, "device_id must be 1..%d bytes, got %d", MaxIDLen, len(id))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.devices[id]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "device %q is already registered", id)
	}
	if len(s.devices) >= s.cfg.MaxDevices {
		return nil, status.Errorf(codes.ResourceExhausted, "registry full: %d devices", s.cfg.MaxDevices)
	}
	s.serial++
	d := &devicepb.Device{DeviceId: id, Firmware: req.GetFirmware(), Serial: s.serial}
	s.devices[id] = d
	return d, nil
}

// GetDevice returns a registered device, or NOT_FOUND.
func (s *Server) GetDevice(ctx context.Context, req *devicepb.GetDeviceRequest) (*devicepb.Device, error) {
	s.mu.Lock()
	d, ok := s.devices[req.GetDeviceId()]
	s.mu.Unlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "device %q is not registered", req.GetDeviceId())
	}
	return d, nil // never modified after Register, so safe to share
}

// StreamTelemetry sends Sample{seq: 1, 2, ...} with value
// Config.Source(id, seq), one per interval_ms, until max_samples were sent
// (then it returns nil), the client's context ends (the status of that:
// CANCELLED or DEADLINE_EXCEEDED), or Shutdown is called (UNAVAILABLE).
// NOT_FOUND for an unknown device, INVALID_ARGUMENT for an interval
// outside 1..MaxIntervalMS.
func (s *Server) StreamTelemetry(req *devicepb.TelemetryRequest, stream devicepb.DeviceManager_StreamTelemetryServer) error {
	id := req.GetDeviceId()
	if _, err := s.GetDevice(stream.Context(), &devicepb.GetDeviceRequest{DeviceId: id}); err != nil {
		return err
	}
	ms := req.GetIntervalMs()
	if ms < 1 || ms > MaxIntervalMS {
		return status.Errorf(codes.InvalidArgument, "interval_ms must be 1..%d, got %d", MaxIntervalMS, ms)
	}
	tick := time.NewTicker(time.Duration(ms) * time.Millisecond)
	defer tick.Stop()
	ctx := stream.Context()
	for seq := uint64(1); ; seq++ {
		select {
		case <-ctx.Done():
			// The client went away or its deadline passed: stop working
			// for it now, and say which.
			return status.FromContextError(ctx.Err()).Err()
		case <-s.stopping:
			return status.Error(codes.Unavailable, "gateway shutting down; reconnect elsewhere")
		case <-tick.C:
		}
		if err := stream.Send(&devicepb.Sample{DeviceId: id, Seq: seq, Value: s.cfg.Source(id, seq)}); err != nil {
			return err
		}
		if limit := req.GetMaxSamples(); limit > 0 && seq >= uint64(limit) {
			return nil
		}
	}
}

// Run serves the service on ln until ctx ends, then stops gracefully: it
// calls Shutdown so telemetry streams end with UNAVAILABLE, lets calls in
// flight finish for up to Config.Grace, and then closes what is left. It
// closes ln. It returns nil after a stop that ctx asked for, or the error
// that stopped serving.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	gs := grpc.NewServer()
	devicepb.RegisterDeviceManagerServer(gs, s)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("grpc serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	// GracefulStop waits for every handler to return, and a telemetry
	// stream with no limit never would: end them first.
	s.Shutdown()
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(stopped)
	}()
	grace := time.NewTimer(s.cfg.Grace)
	defer grace.Stop()
	select {
	case <-stopped:
	case <-grace.C:
		gs.Stop() // cut off what is left; GracefulStop then returns too
		<-stopped
	}
	<-served // Serve returns nil once stopped
	return nil
}
