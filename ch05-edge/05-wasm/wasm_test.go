package wasm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(withFixtures{m})
}

// withFixtures closes the shared host after the tests, before goleak looks.
type withFixtures struct{ m *testing.M }

func (w withFixtures) Run() int {
	code := w.m.Run()
	fx.close()
	return code
}

// fixtures is what the tests share: each plugin is built once (the go build
// cache makes later runs fast) and compiled once into one host, because
// compiling a Go plugin takes seconds under -race.
type fixtures struct {
	mu      sync.Mutex // guards the fields below
	dir     string
	host    *Host
	plugins map[string]*Plugin
}

var fx fixtures

// testConfig is the sandbox every test instance runs in: 16 MiB, and a
// deadline of two seconds. That is generous on purpose: on a loaded machine
// under -race, a plugin running out of memory takes a few hundred
// milliseconds to print its fatal error and die, and it must die of that,
// not of the deadline. (Each endless-loop test costs the full two seconds.)
//
// The compiled plugins are cached between runs, in a folder of the system's
// temporary directory: compiling three Go plugins takes seconds, and tens of
// seconds under -race on a busy machine.
var testConfig = Config{
	MemoryLimitPages: 256,
	CallTimeout:      2 * time.Second,
	CacheDir:         testCacheDir(),
}

// testCacheDir names the cache folder after wazero's version, because
// wazero cannot tell its own version inside a test binary, and a cache
// written by another version must never be read. Where the version cannot
// be found (a -trimpath build), the tests run without a cache.
func testCacheDir() string {
	file, _ := runtime.FuncForPC(reflect.ValueOf(wazero.NewRuntime).Pointer()).FileLine(0)
	_, after, ok := strings.Cut(file, "tetratelabs/wazero@")
	version, _, _ := strings.Cut(after, "/")
	if !ok || version == "" {
		return ""
	}
	return filepath.Join(os.TempDir(), "floodgate-wazero-cache-"+version)
}

// load builds plugins/NAME and loads it into the shared host.
func (f *fixtures) load(tb testing.TB, name string) *Plugin {
	tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.plugins[name]; ok {
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if f.host == nil {
		dir, err := os.MkdirTemp("", "floodgate-wasm-")
		require.NoError(tb, err)
		h, err := NewHost(ctx, testConfig)
		if err != nil {
			_ = os.RemoveAll(dir)
			require.NoError(tb, err)
		}
		f.dir, f.host, f.plugins = dir, h, map[string]*Plugin{}
	}
	out := filepath.Join(f.dir, name+".wasm")
	require.NoError(tb, BuildPlugin(ctx, filepath.Join("plugins", name), out))
	b, err := os.ReadFile(out)
	require.NoError(tb, err)
	p, err := f.host.Load(ctx, b)
	require.NoError(tb, err)
	f.plugins[name] = p
	return p
}

func (f *fixtures) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.host != nil {
		_ = f.host.Close(context.Background())
		_ = os.RemoveAll(f.dir)
	}
}

// instance makes an instance of plugins/NAME that the test closes at its end.
func instance(t *testing.T, name string) *Instance {
	t.Helper()
	inst, err := fx.load(t, name).Instantiate(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { _ = inst.Close(context.Background()) })
	return inst
}

// bounded returns a context that gives up after a few seconds, so that a
// stub without a sandbox fails instead of spinning on forever.
func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func msg(topic, payload string) Message { return Message{Topic: topic, Payload: []byte(payload)} }

func TestTask1_CallAcrossTheABI(t *testing.T) {
	t.Run("a transform rewrites the payload", func(t *testing.T) {
		inst := instance(t, "envelope")
		res, err := inst.Handle(bounded(t), msg("sensors/t1", "21.5"))
		require.NoError(t, err)
		assert.False(t, res.Drop)
		assert.JSONEq(t, `{"topic":"sensors/t1","value":21.5}`, string(res.Payload))
	})
	t.Run("a filter keeps or drops", func(t *testing.T) {
		inst := instance(t, "threshold")
		for _, tc := range []struct {
			payload string
			drop    bool
		}{{"12", true}, {"31.5", false}, {"30", false}, {"hot", true}, {"", true}} {
			res, err := inst.Handle(bounded(t), msg("sensors/t1", tc.payload))
			require.NoError(t, err, "payload %q", tc.payload)
			assert.Equal(t, tc.drop, res.Drop, "payload %q", tc.payload)
			if !tc.drop {
				assert.Equal(t, tc.payload, string(res.Payload))
			}
		}
	})
	t.Run("payloads of every size come back whole", func(t *testing.T) {
		inst := instance(t, "runaway") // echoes what it does not understand
		for _, size := range []int{0, 1, 100, 4096, 70_000, 1 << 20} {
			payload := []byte(strings.Repeat("x", size))
			if size > 0 {
				payload[size-1] = 'E'
			}
			res, err := inst.Handle(bounded(t), Message{Topic: "big", Payload: payload})
			require.NoError(t, err, "size %d", size)
			require.False(t, res.Drop, "size %d", size)
			require.Equal(t, payload, res.Payload, "size %d", size)
		}
	})
	t.Run("the result is a copy the caller owns", func(t *testing.T) {
		inst := instance(t, "envelope")
		// The second result is shorter, so the plugin writes it where the
		// first one was.
		first, err := inst.Handle(bounded(t), msg("bbbbbbbb", "2222222"))
		require.NoError(t, err)
		kept := string(first.Payload)
		_, err = inst.Handle(bounded(t), msg("a", "1"))
		require.NoError(t, err)
		assert.Equal(t, kept, string(first.Payload), "a later call changed an earlier result")
	})
	t.Run("one instance serves many calls", func(t *testing.T) {
		inst := instance(t, "envelope")
		ctx := bounded(t)
		for n := range 500 {
			topic := fmt.Sprintf("dev/%d", n)
			res, err := inst.Handle(ctx, msg(topic, fmt.Sprint(n)))
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf(`{"topic":%q,"value":%d}`, topic, n), string(res.Payload))
		}
	})
	t.Run("a topic too long for the ABI is refused", func(t *testing.T) {
		inst := instance(t, "envelope")
		_, err := inst.Handle(bounded(t), msg(strings.Repeat("t", 70_000), "1"))
		require.ErrorIs(t, err, ErrBadMessage)
		res, err := inst.Handle(bounded(t), msg("t", "1"))
		require.NoError(t, err, "a refused message must not break the instance")
		assert.False(t, res.Drop)
	})
	t.Run("bytes that are not a plugin are refused", func(t *testing.T) {
		host := fx.load(t, "envelope").host
		_, err := host.Load(context.Background(), []byte("not wasm at all"))
		require.ErrorIs(t, err, ErrBadPlugin)
		empty := []byte("\x00asm\x01\x00\x00\x00") // a valid module with no exports
		_, err = host.Load(context.Background(), empty)
		require.ErrorIs(t, err, ErrBadPlugin)
		assert.ErrorContains(t, err, "no export")
	})
}

func TestTask2_Sandbox(t *testing.T) {
	t.Run("an endless loop is stopped at the deadline", func(t *testing.T) {
		inst := instance(t, "runaway")
		_, err := inst.Handle(bounded(t), msg("x", "loop"))
		require.ErrorIs(t, err, ErrTimeout)
		_, err = inst.Handle(bounded(t), msg("x", "hello"))
		require.ErrorIs(t, err, ErrClosed, "a stopped instance must not be called again")
	})
	t.Run("memory is capped", func(t *testing.T) {
		inst := instance(t, "runaway")
		// The plugin asks for 256 MiB; the sandbox gives it 16.
		_, err := inst.Handle(bounded(t), msg("x", "grow"))
		require.ErrorIs(t, err, ErrCrashed)
		assert.ErrorContains(t, err, "out of memory", "the error should carry the plugin's stderr")
	})
	t.Run("a panic is a crash", func(t *testing.T) {
		inst := instance(t, "runaway")
		_, err := inst.Handle(bounded(t), msg("x", "panic"))
		require.ErrorIs(t, err, ErrCrashed)
		assert.ErrorContains(t, err, "asked to panic")
	})
	t.Run("a result outside linear memory is refused", func(t *testing.T) {
		inst := instance(t, "runaway")
		_, err := inst.Handle(bounded(t), msg("x", "badptr"))
		require.ErrorIs(t, err, ErrBadResult)
		_, err = inst.Handle(bounded(t), msg("x", "hello"))
		require.ErrorIs(t, err, ErrClosed)
	})
	t.Run("the caller's cancel is not a timeout", func(t *testing.T) {
		inst := instance(t, "envelope")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := inst.Handle(ctx, msg("x", "1"))
		require.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, ErrTimeout)
	})
	t.Run("the host and the other instances are unaffected", func(t *testing.T) {
		bad := instance(t, "runaway")
		good := instance(t, "envelope")
		var wg sync.WaitGroup
		var loopErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, loopErr = bad.Handle(bounded(t), msg("x", "loop"))
		}()
		// While bad spins on one goroutine, good goes on working.
		ctx := bounded(t)
		for n := range 50 {
			res, err := good.Handle(ctx, msg("t", fmt.Sprint(n)))
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf(`{"topic":"t","value":%d}`, n), string(res.Payload))
		}
		wg.Wait()
		require.ErrorIs(t, loopErr, ErrTimeout)
		// The same plugin still gives healthy instances.
		fresh := instance(t, "runaway")
		res, err := fresh.Handle(bounded(t), msg("x", "hello"))
		require.NoError(t, err)
		assert.Equal(t, "hello", string(res.Payload))
	})
}

func TestTask3_Pool(t *testing.T) {
	t.Run("a size of zero is refused", func(t *testing.T) {
		_, err := NewPool(context.Background(), fx.load(t, "envelope"), 0)
		require.ErrorIs(t, err, ErrBadConfig)
	})
	t.Run("200 concurrent callers share 8 instances", func(t *testing.T) {
		pool, err := NewPool(bounded(t), fx.load(t, "envelope"), 8)
		require.NoError(t, err)
		defer func() { require.NoError(t, pool.Close(context.Background())) }()
		assert.Equal(t, PoolStats{Instances: 8}, pool.Stats())

		const callers = 200
		got := make([]string, callers)
		errs := make([]error, callers)
		ctx := bounded(t)
		var wg sync.WaitGroup
		for n := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var res Result
				res, errs[n] = pool.Handle(ctx, msg(fmt.Sprintf("dev/%d", n), fmt.Sprint(n)))
				got[n] = string(res.Payload)
			}()
		}
		wg.Wait()
		for n := range callers {
			require.NoError(t, errs[n], "caller %d", n)
			require.Equal(t, fmt.Sprintf(`{"topic":"dev/%d","value":%d}`, n, n), got[n], "caller %d", n)
		}
		assert.Equal(t, PoolStats{Instances: 8}, pool.Stats())
	})
	t.Run("a failed instance is replaced, the pool keeps its size", func(t *testing.T) {
		pool, err := NewPool(bounded(t), fx.load(t, "runaway"), 4)
		require.NoError(t, err)
		defer func() { require.NoError(t, pool.Close(context.Background())) }()
		_, err = pool.Handle(bounded(t), msg("x", "loop"))
		require.ErrorIs(t, err, ErrTimeout)
		_, err = pool.Handle(bounded(t), msg("x", "panic"))
		require.ErrorIs(t, err, ErrCrashed)
		assert.Equal(t, PoolStats{Instances: 4, Replaced: 2}, pool.Stats())
		for n := range 8 {
			res, err := pool.Handle(bounded(t), msg("x", fmt.Sprint("ok", n)))
			require.NoError(t, err)
			assert.Equal(t, fmt.Sprint("ok", n), string(res.Payload))
		}
	})
	t.Run("a closed pool refuses work", func(t *testing.T) {
		pool, err := NewPool(bounded(t), fx.load(t, "envelope"), 2)
		require.NoError(t, err)
		require.NoError(t, pool.Close(context.Background()))
		_, err = pool.Handle(bounded(t), msg("x", "1"))
		require.ErrorIs(t, err, ErrClosed)
		require.NoError(t, pool.Close(context.Background()), "closing twice is fine")
		assert.Equal(t, 0, pool.Stats().Instances)
	})
}
