//go:build floodgate.solution

package xsync

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// FetchAll fetches the configuration of every device in ids, running at
// most limit fetches at a time (limit < 1 means 1). The result is in the
// order of ids. On the first error it stops starting fetches, cancels the
// context of those running, waits for them, and returns that error wrapped
// with the device's ID.
func FetchAll(ctx context.Context, ids []string, limit int, fetch FetchFunc) ([]DeviceConfig, error) {
	g, ctx := errgroup.WithContext(ctx) // ctx is cancelled on the first error
	g.SetLimit(max(limit, 1))           // g.Go blocks while limit are running
	out := make([]DeviceConfig, len(ids))
	for i, id := range ids {
		if ctx.Err() != nil {
			break // a fetch failed: start no more
		}
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err // another fetch failed while we waited for a slot
			}
			cfg, err := fetch(ctx, id)
			if err != nil {
				return fmt.Errorf("fetch %s: %w", id, err)
			}
			out[i] = cfg // each goroutine writes its own element: no lock
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// RunJobs runs every job in its own goroutine, holding Weight units of a
// capacity of capacity units while it runs, so that the running jobs never
// weigh more than capacity together. Jobs start in order: a heavy job
// waiting for room holds back the lighter ones behind it. A job heavier
// than capacity makes RunJobs return ErrTooHeavy before anything runs. The
// first job error cancels the others' context and is returned, wrapped with
// the job's name.
func RunJobs(ctx context.Context, capacity int64, jobs []Job) error {
	for _, j := range jobs {
		if j.Weight > capacity || j.Weight < 0 {
			return fmt.Errorf("run job %s (weight %d of %d): %w", j.Name, j.Weight, capacity, ErrTooHeavy)
		}
	}
	sem := semaphore.NewWeighted(capacity)
	g, ctx := errgroup.WithContext(ctx)
	var startErr error
	for _, j := range jobs {
		// Acquire waits for room, in order of arrival (FIFO).
		if err := sem.Acquire(ctx, j.Weight); err != nil {
			startErr = err // ctx ended: a job failed or the caller gave up
			break
		}
		g.Go(func() error {
			defer sem.Release(j.Weight)
			if err := j.Run(ctx); err != nil {
				return fmt.Errorf("run job %s: %w", j.Name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err // a job's error comes first
	}
	if startErr != nil {
		return fmt.Errorf("run jobs: %w", startErr) // the caller's ctx ended
	}
	return nil
}

// Get returns the configuration of device id, from the cache or else from
// one fetch shared by every concurrent caller asking for the same id. The
// shared fetch runs with the cache's Timeout and without the callers'
// cancellation, so that one caller giving up does not fail the others;
// each caller still returns as soon as its own ctx ends.
func (c *Cache) Get(ctx context.Context, id string) (DeviceConfig, error) {
	if cfg, ok := c.cached(id); ok {
		return cfg, nil
	}
	ch := c.group.DoChan(id, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		cfg, err := c.fetch(fctx, id)
		if err != nil {
			return nil, err
		}
		c.put(id, cfg) // before Do returns, so later callers hit the cache
		return cfg, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return DeviceConfig{}, fmt.Errorf("get config %s: %w", id, r.Err)
		}
		return r.Val.(DeviceConfig), nil
	case <-ctx.Done():
		return DeviceConfig{}, fmt.Errorf("get config %s: %w", id, ctx.Err())
	}
}
