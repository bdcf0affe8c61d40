// Package xsync puts golang.org/x/sync to work on a device fleet: errgroup
// fetches the configurations of many devices in parallel, at most a few at a
// time, and cancels the rest on the first error; semaphore.Weighted runs
// jobs of different sizes within one budget; singleflight collapses the
// concurrent cache misses of one device into one fetch.
package xsync

import (
	"context"
	"errors"
	"time"
)

// DeviceConfig is what a device's configuration service returns.
type DeviceConfig struct {
	ID          string
	Firmware    string
	ReportEvery time.Duration
}

// FetchFunc fetches one device's configuration. It must return when ctx
// ends.
type FetchFunc func(ctx context.Context, id string) (DeviceConfig, error)

// Job is a unit of work with a weight: the share of a budget (say, MiB of
// memory or concurrent uploads) it holds while it runs.
type Job struct {
	Name   string
	Weight int64
	Run    func(ctx context.Context) error
}

// ErrTooHeavy is returned by RunJobs for a job heavier than the whole
// capacity: it could never start.
var ErrTooHeavy = errors.New("xsync: job heavier than capacity")
