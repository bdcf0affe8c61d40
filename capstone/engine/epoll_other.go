//go:build !linux

package engine

import (
	"context"
	"net"
)

// ServeEpoll returns ErrEpollUnsupported: the epoll engine needs Linux.
func ServeEpoll(ctx context.Context, ln net.Listener, cfg EpollConfig, newConn NewConn) error {
	ln.Close()
	return ErrEpollUnsupported
}

// PlanEpoll returns ErrEpollUnsupported: the epoll engine needs Linux.
func PlanEpoll(cfg EpollConfig) (EpollPlan, error) { return EpollPlan{}, ErrEpollUnsupported }
