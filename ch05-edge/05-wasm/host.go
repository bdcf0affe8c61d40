package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// This file is given: loading and instantiating plugins is not the lesson.
// The sandbox, the call across the ABI and the pool are yours, in wasm.go.

// Host owns one wazero runtime. Every plugin it loads and every instance of
// those plugins lives in that runtime and shares its sandbox settings. A Host
// is safe for concurrent use. Close it to free everything it holds.
type Host struct {
	rt    wazero.Runtime
	cache wazero.CompilationCache // nil without Config.CacheDir
	cfg   Config                  // with defaults filled in; read-only after NewHost
}

// NewHost validates cfg, fills in its defaults and starts a runtime with the
// sandbox that sandbox(cfg) describes. It returns ErrBadConfig for a field
// out of range.
func NewHost(ctx context.Context, cfg Config) (*Host, error) {
	if cfg.MemoryLimitPages > 65536 {
		return nil, fmt.Errorf("wasm: new host: MemoryLimitPages %d over 65536: %w", cfg.MemoryLimitPages, ErrBadConfig)
	}
	if cfg.CallTimeout < 0 {
		return nil, fmt.Errorf("wasm: new host: negative CallTimeout %v: %w", cfg.CallTimeout, ErrBadConfig)
	}
	if cfg.MemoryLimitPages == 0 {
		cfg.MemoryLimitPages = DefaultMemoryLimitPages
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	rc := sandbox(cfg)
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		var err error
		if cache, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir); err != nil {
			return nil, fmt.Errorf("wasm: new host: cache: %w", err)
		}
		rc = rc.WithCompilationCache(cache)
	}
	h := &Host{rt: wazero.NewRuntimeWithConfig(ctx, rc), cache: cache, cfg: cfg}
	// WASI gives a Go plugin its clock, random numbers and stderr; the
	// module config below grants it no files, no arguments and no network.
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, h.rt); err != nil {
		_ = h.Close(ctx)
		return nil, fmt.Errorf("wasm: new host: wasi: %w", err)
	}
	return h, nil
}

// Config returns the host's configuration, with its defaults filled in.
func (h *Host) Config() Config { return h.cfg }

// Close closes the runtime and with it every plugin and instance.
func (h *Host) Close(ctx context.Context) error {
	err := h.rt.Close(ctx)
	if h.cache != nil {
		err = errors.Join(err, h.cache.Close(ctx))
	}
	if err != nil {
		return fmt.Errorf("wasm: close host: %w", err)
	}
	return nil
}

// Plugin is a compiled plugin module: compile once, instantiate many times.
// It is safe for concurrent use.
type Plugin struct {
	host *Host
	cm   wazero.CompiledModule
}

// Load compiles a plugin module and checks that it exports the ABI. It
// returns ErrBadPlugin when wasmBytes is not a valid module or lacks an
// export. Compiling is the slow step (hundreds of milliseconds for a Go
// plugin); instantiating is cheap.
func (h *Host) Load(ctx context.Context, wasmBytes []byte) (*Plugin, error) {
	cm, err := h.rt.CompileModule(ctx, wasmBytes)
	if err != nil {
		return nil, fmt.Errorf("wasm: load: %w: %v", ErrBadPlugin, err)
	}
	want := map[string]string{
		"_initialize": "() -> ()",
		"alloc":       "(i32) -> (i32)",
		"handle":      "(i32,i32) -> (i64)",
	}
	exports := cm.ExportedFunctions()
	for name, sig := range want {
		fn, ok := exports[name]
		if !ok {
			_ = cm.Close(ctx)
			return nil, fmt.Errorf("wasm: load: %w: no export %q", ErrBadPlugin, name)
		}
		if got := signature(fn); got != sig {
			_ = cm.Close(ctx)
			return nil, fmt.Errorf("wasm: load: %w: export %q is %s, want %s", ErrBadPlugin, name, got, sig)
		}
	}
	return &Plugin{host: h, cm: cm}, nil
}

func signature(fn api.FunctionDefinition) string {
	name := func(ts []api.ValueType) string {
		var b bytes.Buffer
		for i, t := range ts {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(api.ValueTypeName(t))
		}
		return b.String()
	}
	return "(" + name(fn.ParamTypes()) + ") -> (" + name(fn.ResultTypes()) + ")"
}

// Close frees the compiled code. Instances already made keep working.
func (p *Plugin) Close(ctx context.Context) error {
	if err := p.cm.Close(ctx); err != nil {
		return fmt.Errorf("wasm: close plugin: %w", err)
	}
	return nil
}

// Instance is one instantiated plugin: its own linear memory, globals and Go
// runtime. It is not safe for concurrent use.
type Instance struct {
	mod    api.Module
	alloc  api.Function
	handle api.Function
	cfg    Config
	stderr *tailBuffer
	buf    []byte // scratch for encodeMessage
	dead   bool   // a call failed and the module was closed
}

// Instantiate makes a new instance and runs the plugin's _initialize (Go's
// runtime start-up and init functions) under ctx. Instances are anonymous,
// so one plugin can have any number of them.
func (p *Plugin) Instantiate(ctx context.Context) (*Instance, error) {
	stderr := &tailBuffer{max: 4 << 10}
	mc := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions("_initialize").
		WithStderr(stderr)
	mod, err := p.host.rt.InstantiateModule(ctx, p.cm, mc)
	if err != nil {
		return nil, fmt.Errorf("wasm: instantiate: %w: %v%s", ErrCrashed, err, stderr.firstLine())
	}
	return &Instance{
		mod:    mod,
		alloc:  mod.ExportedFunction("alloc"),
		handle: mod.ExportedFunction("handle"),
		cfg:    p.host.cfg,
		stderr: stderr,
	}, nil
}

// MemorySize returns the size of the instance's linear memory in bytes, or 0
// once it is closed.
func (i *Instance) MemorySize() uint32 {
	if i.dead {
		return 0
	}
	return i.mod.Memory().Size()
}

// Close closes the instance and frees its memory. Closing twice is fine.
func (i *Instance) Close(ctx context.Context) error {
	i.dead = true
	if err := i.mod.Close(ctx); err != nil {
		return fmt.Errorf("wasm: close instance: %w", err)
	}
	return nil
}

// encodeMessage appends m in the ABI's layout to dst: a 2-byte big-endian
// topic length, the topic, the payload.
func encodeMessage(dst []byte, m Message) ([]byte, error) {
	if len(m.Topic) > math.MaxUint16 {
		return dst, fmt.Errorf("wasm: encode: topic of %d bytes: %w", len(m.Topic), ErrBadMessage)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Topic)))
	dst = append(dst, m.Topic...)
	return append(dst, m.Payload...), nil
}

// tailBuffer keeps the first max bytes a plugin writes to stderr, so that a
// crash can say why it happened without a plugin being able to fill the
// host's memory with output.
type tailBuffer struct {
	max int
	mu  sync.Mutex // guards b
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := t.max - len(t.b); room > 0 {
		t.b = append(t.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// firstLine returns ": " and the first line written, or "" if none was.
func (t *tailBuffer) firstLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	line, _, _ := bytes.Cut(t.b, []byte("\n"))
	if len(line) == 0 {
		return ""
	}
	return ": " + string(line)
}

// BuildPlugin builds the plugin whose main package is in srcDir into the
// file out, with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared. It needs the
// go command on PATH; the go build cache makes a second build fast. The
// tests and cmd/density use it.
func BuildPlugin(ctx context.Context, srcDir, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-o", out, ".")
	cmd.Dir = srcDir
	// GOFLAGS is cleared so that flags meant for the host build (-race,
	// -tags) do not leak into the plugin build.
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("wasm: build plugin %s: %w\n%s", srcDir, err, msg)
	}
	return nil
}
