//go:build floodgate.solution

package broker

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// testEngine is the connection engine startBroker and the benchmarks give
// the broker. TestMain runs the whole package once per engine, so every
// conformance test runs against both; a fuzz run (one engine: FuzzSession
// drives a session over net.Pipe, the goroutine engine's way) runs once.
var testEngine string

// testPrivateFDs is set for the suite's epoll-sharded run: startBroker's
// epoll engine gives every loop a private fd table (EpollConfig.PrivateFDs).
var testPrivateFDs bool

// engineSharded is the suite's name for the epoll engine with private fd
// tables; it is not a Config.Engine value.
const engineSharded = "epoll-sharded"

var enginesFlag = flag.String("floodgate.engines", "", "comma-separated engines to test (default: goroutine and, on Linux, epoll and epoll-sharded)")

func TestMain(m *testing.M) {
	flag.Parse()
	engines := []string{EngineGoroutine}
	if runtime.GOOS == "linux" {
		engines = append(engines, EngineEpoll, engineSharded)
	}
	if *enginesFlag != "" {
		engines = strings.Split(*enginesFlag, ",")
	}
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		engines = engines[:1]
	}
	code := 0
	for _, e := range engines {
		testEngine, testPrivateFDs = e, e == engineSharded
		if testPrivateFDs {
			testEngine = EngineEpoll
		}
		fmt.Printf("=== engine %s\n", e)
		if c := m.Run(); c != 0 {
			fmt.Printf("--- FAIL: the suite with engine %s\n", e)
			code = c
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: Errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// TestEngineSelected checks that the broker runs on the engine the suite
// says, and that a bad engine name is a clear error.
func TestEngineSelected(t *testing.T) {
	b, _ := startBroker(t, Config{})
	want := testEngine
	if want == "" {
		want = DefaultEngine()
	}
	if b.cfg.Engine != want {
		t.Fatalf("broker engine %q, want %q", b.cfg.Engine, want)
	}
	// An empty Engine is the platform's default: epoll on Linux.
	d, err := New(Config{SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if wantDefault := map[bool]string{true: EngineEpoll, false: EngineGoroutine}[runtime.GOOS == "linux"]; d.cfg.Engine != wantDefault {
		t.Fatalf("Config{} runs engine %q, want %q", d.cfg.Engine, wantDefault)
	}
	_, err = New(Config{Engine: "kqueue"})
	if err == nil || !strings.Contains(err.Error(), `engine "kqueue"`) {
		t.Fatalf("New with engine kqueue: %v, want a bad-config error naming it", err)
	}
}
