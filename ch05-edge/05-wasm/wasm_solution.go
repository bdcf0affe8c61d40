//go:build floodgate.solution

package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"
)

// sandbox returns the runtime configuration every instance runs under.
func sandbox(cfg Config) wazero.RuntimeConfig {
	return wazero.NewRuntimeConfigCompiler().
		// Without this, a call that loops forever cannot be stopped: the
		// compiled code never looks at the context. With it, wazero checks
		// the context at function entries and loop back-edges.
		WithCloseOnContextDone(true).
		// memory.grow past this many pages fails, so the guest's allocator
		// sees out-of-memory instead of taking the host's.
		WithMemoryLimitPages(cfg.MemoryLimitPages)
}

// call sends msg across the ABI: alloc, write, handle, read.
func (i *Instance) call(ctx context.Context, msg Message) (Result, error) {
	var err error
	i.buf, err = encodeMessage(i.buf[:0], msg)
	if err != nil {
		return Result{}, err
	}
	size := uint64(len(i.buf))
	res, err := i.alloc.Call(ctx, size)
	if err != nil {
		return Result{}, fmt.Errorf("call alloc: %w", err)
	}
	ptr := res[0]
	// Write refuses a range outside linear memory instead of panicking.
	if !i.mod.Memory().Write(uint32(ptr), i.buf) {
		return Result{}, fmt.Errorf("wasm: alloc returned %#x for %d bytes: %w", ptr, size, ErrBadResult)
	}
	res, err = i.handle.Call(ctx, ptr, size)
	if err != nil {
		return Result{}, fmt.Errorf("call handle: %w", err)
	}
	packed := res[0]
	if packed == 0 {
		return Result{Drop: true}, nil
	}
	outPtr, outLen := uint32(packed>>32), uint32(packed)
	out, ok := i.mod.Memory().Read(outPtr, outLen)
	if !ok {
		return Result{}, fmt.Errorf("wasm: handle returned %d bytes at %#x: %w", outLen, outPtr, ErrBadResult)
	}
	// out is a view of linear memory: the next call may overwrite it, so
	// the caller gets a copy.
	return Result{Payload: bytes.Clone(out)}, nil
}

// Handle runs the plugin on msg within Config.CallTimeout. After any failure
// other than ErrBadMessage the instance is closed, and later calls return
// ErrClosed.
func (i *Instance) Handle(ctx context.Context, msg Message) (Result, error) {
	if i.dead {
		return Result{}, fmt.Errorf("wasm: handle: %w", ErrClosed)
	}
	// The cause tells our own deadline apart from the caller's.
	ctx, cancel := context.WithTimeoutCause(ctx, i.cfg.CallTimeout, ErrTimeout)
	defer cancel()
	res, err := i.call(ctx, msg)
	if err == nil || errors.Is(err, ErrBadMessage) {
		return res, err
	}
	// The guest may be half way through anything: never call it again.
	_ = i.Close(context.Background())
	switch {
	case errors.Is(err, ErrBadResult):
		return Result{}, err
	case ctx.Err() != nil:
		return Result{}, fmt.Errorf("wasm: handle %q: %w", msg.Topic, context.Cause(ctx))
	default:
		// wazero's error goes on with the guest's stack trace; its first
		// line and the guest's own last words are what an operator needs.
		first, _, _ := strings.Cut(err.Error(), "\n")
		return Result{}, fmt.Errorf("wasm: handle %q: %w: %s%s", msg.Topic, ErrCrashed, first, i.stderr.firstLine())
	}
}

// NewPool instantiates size instances of p, concurrently, and returns a
// pool that lends them out. If any instantiation fails it closes the others
// and returns the error.
func NewPool(ctx context.Context, p *Plugin, size int) (*Pool, error) {
	if size <= 0 {
		return nil, fmt.Errorf("wasm: new pool: size %d: %w", size, ErrBadConfig)
	}
	insts := make([]*Instance, size)
	errs := make([]error, size)
	var wg sync.WaitGroup
	for n := range size {
		wg.Add(1)
		go func() {
			defer wg.Done()
			insts[n], errs[n] = p.Instantiate(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, inst := range insts {
			if inst != nil {
				_ = inst.Close(ctx)
			}
		}
		return nil, fmt.Errorf("wasm: new pool: %w", err)
	}
	pool := &Pool{plugin: p, slots: make(chan *Instance, size), done: make(chan struct{}), live: size}
	for _, inst := range insts {
		pool.slots <- inst
	}
	return pool, nil
}

// Handle borrows an instance (waiting for a free slot as long as ctx
// allows), runs it on msg and gives it back. An instance whose call failed
// is closed and replaced by a fresh one, so one bad message costs one
// instance, never the pool.
func (p *Pool) Handle(ctx context.Context, msg Message) (Result, error) {
	var inst *Instance
	select {
	case inst = <-p.slots:
	case <-p.done:
		return Result{}, fmt.Errorf("wasm: pool: %w", ErrClosed)
	case <-ctx.Done():
		return Result{}, fmt.Errorf("wasm: pool: waiting for an instance: %w", context.Cause(ctx))
	}
	if inst == nil { // an empty slot: a replacement failed earlier
		var err error
		if inst, err = p.refill(ctx); err != nil {
			return Result{}, err
		}
	}
	res, err := inst.Handle(ctx, msg)
	if inst.dead {
		p.mu.Lock()
		p.replaced++
		p.live--
		p.mu.Unlock()
		fresh, ierr := p.refill(context.WithoutCancel(ctx))
		if ierr != nil {
			return res, errors.Join(err, ierr)
		}
		inst = fresh
	}
	p.slots <- inst
	return res, err
}

// refill instantiates an instance for an empty slot. On failure it puts the
// empty slot back, so that the pool keeps its size.
func (p *Pool) refill(ctx context.Context) (*Instance, error) {
	inst, err := p.plugin.Instantiate(ctx)
	if err != nil {
		p.slots <- nil
		return nil, fmt.Errorf("wasm: pool: replace instance: %w", err)
	}
	p.mu.Lock()
	p.live++
	p.mu.Unlock()
	return inst, nil
}

// Stats returns the pool's counters.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PoolStats{Instances: p.live, Replaced: p.replaced}
}

// Close waits for every lent instance to come back, then closes them all.
// Handle calls that find the pool closed return ErrClosed. Closing twice is
// fine.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	p.mu.Unlock()
	var errs []error
	for range cap(p.slots) {
		select {
		case inst := <-p.slots:
			if inst != nil {
				errs = append(errs, inst.Close(ctx))
			}
		case <-ctx.Done():
			return fmt.Errorf("wasm: close pool: %w", context.Cause(ctx))
		}
	}
	p.mu.Lock()
	p.live = 0
	p.mu.Unlock()
	return errors.Join(errs...)
}
