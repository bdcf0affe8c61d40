//go:build !floodgate.solution

package wasm

import (
	"context"

	"github.com/tetratelabs/wazero"
)

// sandbox returns the runtime configuration every instance runs under.
func sandbox(cfg Config) wazero.RuntimeConfig {
	// Given: WithCloseOnContextDone makes wazero check the context inside
	// compiled code, so that a plugin that loops forever can be stopped.
	// Without it your Task 2 tests could never finish.
	//
	// TODO(Task 2): cap each instance's linear memory at
	// cfg.MemoryLimitPages.
	_ = cfg
	return wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(true)
}

// call sends msg across the ABI: alloc, write, handle, read.
func (i *Instance) call(ctx context.Context, msg Message) (Result, error) {
	// TODO(Task 1): encode msg with encodeMessage (into i.buf), ask the
	// guest for a buffer with i.alloc, write the bytes into
	// i.mod.Memory(), call i.handle, and decode the packed result:
	// 0 means drop, otherwise address<<32 | length. Return a copy of the
	// result bytes, and ErrBadResult for a range outside linear memory.
	_, _ = ctx, msg
	return Result{}, ErrNotImplemented
}

// Handle runs the plugin on msg within Config.CallTimeout. After any failure
// other than ErrBadMessage the instance is closed, and later calls return
// ErrClosed.
func (i *Instance) Handle(ctx context.Context, msg Message) (Result, error) {
	// TODO(Task 2): refuse a closed instance (ErrClosed); bound the call
	// with i.cfg.CallTimeout so that its expiry can be told apart from the
	// caller's (context.WithTimeoutCause); after a failure close the
	// instance and return ErrTimeout or ErrCrashed (with
	// i.stderr.firstLine()) or the ErrBadResult as it is.
	return i.call(ctx, msg)
}

// NewPool instantiates size instances of p, concurrently, and returns a
// pool that lends them out. If any instantiation fails it closes the others
// and returns the error.
func NewPool(ctx context.Context, p *Plugin, size int) (*Pool, error) {
	// TODO(Task 3): reject size <= 0 with ErrBadConfig; instantiate the
	// instances in parallel; fill p.slots.
	_, _, _ = ctx, p, size
	return nil, ErrNotImplemented
}

// Handle borrows an instance (waiting for a free slot as long as ctx
// allows), runs it on msg and gives it back. An instance whose call failed
// is closed and replaced by a fresh one, so one bad message costs one
// instance, never the pool.
func (p *Pool) Handle(ctx context.Context, msg Message) (Result, error) {
	// TODO(Task 3): take a slot (or give up on p.done or ctx.Done()),
	// handle, and put the instance, or a fresh one, back.
	_, _ = ctx, msg
	return Result{}, ErrNotImplemented
}

// Stats returns the pool's counters.
func (p *Pool) Stats() PoolStats {
	// TODO(Task 3): read the counters under p.mu.
	return PoolStats{}
}

// Close waits for every lent instance to come back, then closes them all.
// Handle calls that find the pool closed return ErrClosed. Closing twice is
// fine.
func (p *Pool) Close(ctx context.Context) error {
	// TODO(Task 3): close p.done once, drain every slot, close each
	// instance.
	_ = ctx
	return nil
}
