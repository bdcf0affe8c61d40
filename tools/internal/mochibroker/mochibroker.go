// Package mochibroker starts the mochi-mqtt broker
// (github.com/mochi-mqtt/server/v2) the way `make bench` compares it: default
// options, no authentication (the allow-all hook), one TCP listener. The
// load generator's tests use it as an in-process broker on 127.0.0.1:0.
package mochibroker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Start serves MQTT on ln and returns the running server; the server owns
// ln, and Close on it stops everything Start started. log may be nil:
// mochi's own default logger (info level, on stdout) is used then.
func Start(ln net.Listener, log *slog.Logger) (*mochi.Server, error) {
	srv := mochi.New(&mochi.Options{Logger: log})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		ln.Close()
		return nil, fmt.Errorf("mochibroker: %w", err)
	}
	if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		ln.Close()
		return nil, fmt.Errorf("mochibroker: %w", err)
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("mochibroker: %w", errors.Join(err, srv.Close()))
	}
	return srv, nil
}
