//go:build !floodgate.solution

package xsync

import (
	"context"
	"errors"
)

// FetchAll fetches the configuration of every device in ids, running at
// most limit fetches at a time (limit < 1 means 1). The result is in the
// order of ids. On the first error it stops starting fetches, cancels the
// context of those running, waits for them, and returns that error wrapped
// with the device's ID.
func FetchAll(ctx context.Context, ids []string, limit int, fetch FetchFunc) ([]DeviceConfig, error) {
	// TODO(Task 1): errgroup.WithContext, SetLimit, one g.Go per id that
	// writes its own element of the result; stop starting fetches once the
	// group's context is done; return g.Wait()'s error.
	return nil, errors.New("xsync: FetchAll not implemented")
}

// RunJobs runs every job in its own goroutine, holding Weight units of a
// capacity of capacity units while it runs, so that the running jobs never
// weigh more than capacity together. Jobs start in order: a heavy job
// waiting for room holds back the lighter ones behind it. A job heavier
// than capacity makes RunJobs return ErrTooHeavy before anything runs. The
// first job error cancels the others' context and is returned, wrapped with
// the job's name.
func RunJobs(ctx context.Context, capacity int64, jobs []Job) error {
	// TODO(Task 2): refuse jobs heavier than capacity; semaphore.NewWeighted;
	// for each job Acquire its weight, then run it in an errgroup goroutine
	// that Releases the weight when the job returns.
	return nil
}

// Get returns the configuration of device id, from the cache or else from
// one fetch shared by every concurrent caller asking for the same id. The
// shared fetch runs with the cache's Timeout and without the callers'
// cancellation, so that one caller giving up does not fail the others;
// each caller still returns as soon as its own ctx ends.
func (c *Cache) Get(ctx context.Context, id string) (DeviceConfig, error) {
	// TODO(Task 3): c.cached first; on a miss, c.group.DoChan(id, ...) with
	// a fetch under context.WithoutCancel(ctx) and c.timeout that stores
	// the result with c.put; then wait for the result or ctx.Done().
	return DeviceConfig{}, errors.New("xsync: Get not implemented")
}
