//go:build !linux

package load

import (
	"errors"
	"net/netip"
	"time"

	mqtt "floodgate/ch03-networking/03-mqtt"
)

// The epoll engine is Linux only; elsewhere Run fails at once.

type sockaddrT struct{}

func sockaddr(netip.AddrPort) sockaddrT { return sockaddrT{} }

func fdLimit() (uint64, error) { return 0, errors.ErrUnsupported }

type loop struct {
	hist   Histogram
	lastRx time.Duration
	pubs   []struct{}
	pkt    mqtt.Publish
}

func (l *loop) dial(int32, bool)               {}
func (l *loop) startBlast()                    {}
func (l *loop) startPacing(float64, time.Time) {}

type engine struct{ loops []*loop }

func newEngine(*shared, int) (*engine, error) { return nil, errors.ErrUnsupported }
func (e *engine) start()                      {}
func (e *engine) stop()                       {}
func (e *engine) post(int, func(*loop))       {}

func (l *loop) sweep([]int32)  {}
func (l *loop) census() Census { return Census{} }
