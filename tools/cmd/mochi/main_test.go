package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"

	"floodgate/tools/internal/load"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRun_RefusesANonLoopbackAddress(t *testing.T) {
	assert.ErrorIs(t, run(context.Background(), "0.0.0.0:1883"), load.ErrNotLoopback)
	assert.ErrorIs(t, run(context.Background(), "10.1.2.3:1883"), load.ErrNotLoopback)
}

func TestRun_StopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.NoError(t, run(ctx, "127.0.0.1:0"))
}
