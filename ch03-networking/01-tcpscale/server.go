package tcpscale

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
)

// New returns a Server for cfg, with every zero field set to its default. It
// returns an error wrapping ErrInvalidConfig if a field is negative or the
// back-off bounds are reversed. The caller's cfg is not changed.
func New(cfg Config) (*Server, error) {
	if cfg.MaxConns < 0 || cfg.IdleTimeout < 0 || cfg.ReadBufferSize < 0 ||
		cfg.BackoffMin < 0 || cfg.BackoffMax < 0 {
		return nil, fmt.Errorf("new server: %w: negative field in %+v", ErrInvalidConfig, cfg)
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.ReadBufferSize == 0 {
		cfg.ReadBufferSize = DefaultReadBufferSize
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.BackoffMin > cfg.BackoffMax {
		return nil, fmt.Errorf("new server: %w: BackoffMin %v > BackoffMax %v",
			ErrInvalidConfig, cfg.BackoffMin, cfg.BackoffMax)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Server{
		cfg:       cfg,
		log:       log,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]struct{}),
		done:      make(chan struct{}),
	}, nil
}

// Stats returns a snapshot of the counters. Each field is read atomically;
// the snapshot as a whole is not.
func (s *Server) Stats() Stats {
	return Stats{
		Active:       s.active.Load(),
		Accepted:     s.accepted.Load(),
		Rejected:     s.rejected.Load(),
		IdleClosed:   s.idleClosed.Load(),
		AcceptErrors: s.acceptErrors.Load(),
	}
}

// IsTemporary reports whether an Accept error is worth retrying after a
// pause: the process or the system ran out of descriptors (EMFILE, ENFILE),
// the kernel ran short of memory (ENOBUFS, ENOMEM), or a client gave up
// between SYN and accept (ECONNABORTED). Any other error, such as
// net.ErrClosed, ends the accept loop.
func IsTemporary(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE,
		syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
