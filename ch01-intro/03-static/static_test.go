package static

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStrippedStaticBinary builds the server without cgo and stripped,
// checks that it needs no dynamic loader, runs it, sends it readings over
// loopback, and stops it with SIGTERM.
func TestStrippedStaticBinary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := Build(ctx, Variants[2], t.TempDir())
	require.NoError(t, err)

	l, err := Inspect(bin)
	require.NoError(t, err)
	assert.True(t, l.Static(), "no PT_INTERP and no shared libraries, got %+v", l)
	assert.False(t, l.Symbols, "-ldflags=-s drops the symbol table")

	p, err := Start(ctx, bin)
	require.NoError(t, err)
	defer p.Kill()

	c, err := net.Dial("tcp", p.Addr)
	require.NoError(t, err)
	defer c.Close()
	// Two readings, then a line that is too long: the server handles lines
	// in order, so its ERR reply proves the two readings were counted.
	_, err = io.WriteString(c, "dev-1,temp,21.5\ndev-1,temp,22\n"+strings.Repeat("x", 300)+"\n")
	require.NoError(t, err)
	c.SetReadDeadline(time.Now().Add(30 * time.Second)) // a bound, not a wait
	reply, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	assert.Contains(t, reply, "line too long")

	out, err := p.Stop()
	require.NoError(t, err, "SIGTERM ends the server cleanly, with exit status 0")
	assert.Contains(t, out, "2 readings")
}

func TestInspectRejectsNonELF(t *testing.T) {
	_, err := Inspect("static_test.go")
	assert.Error(t, err)
}
