// Package broker assembles the Floodgate MQTT broker from its stages:
//
//	listeners -> admission -> engine -> session -> router -> queue
//
// Broker holds the registry of sessions (who owns which client id, when a
// session expires, when a delayed will fires) and implements session.Hub.
// Everything else lives in the stage packages; see the capstone README.
//
// Locks: Broker.mu guards the session table and the counters; it is taken
// before a session's mu and never while delivering a message. The router has
// its own locks, taken with or without Broker.mu, never the other way round.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"floodgate/capstone/admission"
	"floodgate/capstone/engine"
	"floodgate/capstone/listeners"
	"floodgate/capstone/ops"
	"floodgate/capstone/router"
	"floodgate/capstone/session"
	"floodgate/capstone/sink"
	"floodgate/capstone/store"
	mqtt "floodgate/ch03-networking/03-mqtt"
)

// ErrBadConfig is wrapped by New for an invalid configuration.
var ErrBadConfig = errors.New("broker: bad config")

// Config configures a Broker. The zero value works: no limits beyond the
// session defaults, no authentication.
type Config struct {
	// Session holds the per-connection limits (packet size, windows,
	// queues, timeouts); see session.Config for the defaults. Each
	// client's outbound queue is bounded in bytes (Session.MaxQueuedBytes,
	// 1 MiB) with a packet cap behind it (Session.MaxQueued, 16,384): a
	// client over either is disconnected as a slow consumer.
	Session session.Config
	// Admission holds the connection cap, accept rate, credentials, ACL
	// and per-client rate limits; the zero value admits everyone.
	Admission admission.Config
	// Logger receives the broker's logs. Default: discard.
	Logger *slog.Logger
	// Listeners are the addresses Run binds; the zero value is TCP
	// 127.0.0.1:1883 and WebSocket 127.0.0.1:8083.
	Listeners listeners.Config
	// Store, if set, keeps sessions, subscriptions, retained messages and
	// in-flight QoS 1/2 state across restarts (store.Open for bbolt); New
	// loads what it holds. Default: memory only. The broker does not close
	// it. Changes go to it through one writer goroutine that commits them
	// in batches; an acknowledgement waits for its changes' commit.
	Store store.Store
	// StoreQueue is how many changes may wait for the store's writer
	// before the broker refuses new QoS 1/2 and retained publications
	// (0x97 Quota exceeded for 5.0; 3.1.1 clients are disconnected) and
	// SUBSCRIBEs (0x97; 0x80 for 3.1.1). Default 8192. It is a soft
	// bound: CONNECTs, UNSUBSCRIBEs, acknowledgements from clients and a
	// publication's copies for its subscribers still add changes.
	StoreQueue int
	// Sink, if set, gets a copy of every message whose topic it matches
	// (a *sink.Pipeline: queue, chapter 4's breaker, file log or webhook).
	// The caller runs and closes it. A refused record is counted
	// ("sink_refused") and the message is still routed.
	Sink Sink
	// SysInterval is how often Run publishes the $SYS/broker/ topics.
	// Default DefaultSysInterval; negative turns them off.
	SysInterval time.Duration
	// Metrics, if set, receives the broker's Prometheus figures (the ops
	// package serves them). Default: none; Counts works either way.
	Metrics *ops.Metrics
	// Engine is the connection engine for plain TCP: EngineGoroutine (one
	// reader goroutine per connection, portable) or EngineEpoll (Linux
	// event loops; see engine.ServeEpoll). Default DefaultEngine(): epoll
	// on Linux, goroutine elsewhere. TLS and WebSocket connections always
	// use the goroutine engine.
	Engine string
	// Epoll tunes the epoll engine (loops, buffer size, timing wheel);
	// the zero value works. Its WriteTimeout defaults to the session's,
	// its Logger to Logger, and its MaxConns to Admission.MaxConns: a cap
	// above what RLIMIT_NOFILE allows one descriptor table gives every
	// loop a private table (engine.PlanEpoll; the engine logs its plan
	// once). Private tables and a Sink are refused together for now: a
	// sink may open spool files on the loop that routes a message, where
	// they would land in the loop's table.
	Epoll engine.EpollConfig
}

// DefaultEngine is the engine an empty Config.Engine selects: EngineEpoll
// on Linux, where it holds an idle connection in a tenth of the goroutine
// engine's memory, with more throughput and a shorter latency tail in
// make bench (capstone/BENCHMARKS.md), and EngineGoroutine elsewhere.
func DefaultEngine() string {
	if runtime.GOOS == "linux" {
		return EngineEpoll
	}
	return EngineGoroutine
}

// The connection engines Config.Engine names.
const (
	EngineGoroutine = "goroutine"
	EngineEpoll     = "epoll"
)

// Broker is an MQTT 3.1.1 and 5.0 broker. Make it with New, then Serve
// listeners (or ServeConn single connections) until their context ends.
type Broker struct {
	cfg     Config
	log     *slog.Logger
	router  *router.Router
	adm     *admission.Admitter
	metrics *ops.Metrics  // nil: none
	store   store.Store   // nil: none
	w       *store.Writer // the store's one writer; nil without a store
	// retainMu makes the router and the store see retained messages in
	// the same order (held only with a store, around no I/O).
	retainMu sync.Mutex

	counts  sync.Map // counter name -> *atomic.Uint64; a leaf lock
	started time.Time

	// releaseAccepted and releaseRefused end a connection of the epoll
	// engine (newDriven): made once in New and shared by every
	// connection, instead of a closure each.
	releaseAccepted, releaseRefused func()
	// countFn is b.Count as a func value, made once: each NewState gets
	// it (a method value made per session is a 16-byte closure each).
	countFn func(name string)

	mu       sync.Mutex
	sessions map[string]*entry // by client id
	closed   bool
}

// entry is a session in the registry. Guarded by Broker.mu. It is 48
// bytes, one size class of the allocator: the broker keeps one per session,
// so what is added here is paid by every idle connection. What only an
// offline session needs is in off.
type entry struct {
	st    *session.State
	owner *session.Conn // nil while offline
	off   *offline      // nil while connected, and offline with nothing pending

	// For the store: what the session record holds.
	version        mqtt.Version
	expiryInterval uint32
	offSince       int64      // when it went offline, Unix nanoseconds; 0 while connected
	persist        *persister // its store link (nil without a store; see newEntry)
}

// offline is what a session keeps while it has no connection: its expiry
// timer, and a delayed will with its timer. Guarded by Broker.mu.
type offline struct {
	expiry    *time.Timer // session expiry
	will      *mqtt.Will  // a delayed will not yet published
	willTimer *time.Timer
}

// offline returns e.off, made if need be.
func (e *entry) offline() *offline {
	if e.off == nil {
		e.off = new(offline)
	}
	return e.off
}

// pendingWill returns the delayed will not yet published, or nil.
func (e *entry) pendingWill() *mqtt.Will {
	if e.off == nil {
		return nil
	}
	return e.off.will
}

// takeWill returns the delayed will not yet published, or nil, and
// forgets it.
func (e *entry) takeWill() *mqtt.Will {
	if e.off == nil {
		return nil
	}
	w := e.off.will
	e.off.will = nil
	return w
}

// stopTimers stops the expiry and delayed-will timers, if any.
func (e *entry) stopTimers() {
	if o := e.off; o != nil {
		stopTimer(&o.expiry)
		stopTimer(&o.willTimer)
	}
}

// disconnectedAt returns when the session went offline; the zero Time
// while it is connected.
func (e *entry) disconnectedAt() time.Time {
	if e.offSince == 0 {
		return time.Time{}
	}
	return time.Unix(0, e.offSince)
}

// setDisconnectedAt records when the session went offline; the zero Time
// means connected.
func (e *entry) setDisconnectedAt(t time.Time) {
	e.offSince = 0
	if !t.IsZero() {
		e.offSince = t.UnixNano()
	}
}

// New returns a Broker for cfg.
func New(cfg Config) (*Broker, error) {
	if cfg.Engine == "" {
		cfg.Engine = DefaultEngine()
	}
	b := &Broker{cfg: cfg, router: router.New(), sessions: make(map[string]*entry), metrics: cfg.Metrics,
		store: cfg.Store, started: time.Now()}
	if b.cfg.SysInterval == 0 {
		b.cfg.SysInterval = DefaultSysInterval
	}
	switch b.cfg.Engine {
	case EngineGoroutine:
	case EngineEpoll:
		if runtime.GOOS != "linux" {
			return nil, fmt.Errorf("new broker: %w: engine %q: %w", ErrBadConfig, b.cfg.Engine, engine.ErrEpollUnsupported)
		}
		if err := b.checkEpoll(); err != nil {
			return nil, fmt.Errorf("new broker: %w: engine %q: %w", ErrBadConfig, b.cfg.Engine, err)
		}
	default:
		return nil, fmt.Errorf("new broker: %w: engine %q: want %q or %q", ErrBadConfig, b.cfg.Engine, EngineGoroutine, EngineEpoll)
	}
	cfg.Admission.OnRefuse = b.refused
	adm, err := admission.New(cfg.Admission)
	if err != nil {
		return nil, fmt.Errorf("new broker: %w: %w", ErrBadConfig, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Session.Admission = adm
	cfg.Session.Logger = cfg.Logger
	if m := b.metrics; m != nil && cfg.Session.QueueDepth == nil {
		cfg.Session.QueueDepth = func(delta, depth int) {
			m.QueueDepth.Add(float64(delta))
			if delta > 0 {
				m.QueueDepthObserved.Observe(float64(depth))
			}
		}
	}
	// Filled once and shared: every connection's session.Conn points at
	// b.cfg.Session instead of holding a copy (NewConn and NewDriven only
	// read a filled Config).
	if cfg.Store != nil && cfg.Session.StoreBusy == nil {
		// b.w is made below, before any connection can ask.
		cfg.Session.StoreBusy = func() bool { return b.w.Busy() }
	}
	cfg.Session.Defaults()
	cfg.SysInterval = b.cfg.SysInterval
	b.cfg, b.log, b.adm = cfg, cfg.Logger, adm
	b.releaseAccepted = func() {
		adm.Release()
		if m := b.metrics; m != nil {
			m.ConnectionsCurrent.Dec()
		}
		b.gauges()
	}
	b.releaseRefused = b.gauges
	b.countFn = b.Count
	if b.store != nil {
		b.w = b.newWriter()
		if err := b.load(time.Now()); err != nil {
			return nil, fmt.Errorf("new broker: load the store: %w", err)
		}
	}
	return b, nil
}

// Serve runs the configured engine on ln until ctx is done; see
// engine.Serve and engine.ServeEpoll (used only for a *net.TCPListener).
// Each connection is killed with 0x8B Server shutting down (a DISCONNECT for
// a 5.0 client) when ctx ends, and Serve returns once all have ended.
func (b *Broker) Serve(ctx context.Context, ln net.Listener) error {
	if b.w != nil {
		defer b.w.Flush() // the store has what the connections left
	}
	if _, ok := ln.(*net.TCPListener); ok && b.cfg.Engine == EngineEpoll {
		return b.serveEpoll(ctx, ln)
	}
	return engine.Serve(ctx, ln, b.ServeConn)
}

// errShardedSink: see Config.Epoll.
var errShardedSink = errors.New("private fd tables (a connection cap above RLIMIT_NOFILE) and a sink cannot be used together yet")

// epollConfig is Config.Epoll with the defaults it documents.
func (b *Broker) epollConfig() engine.EpollConfig {
	cfg := b.cfg.Epoll
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = b.cfg.Session.WriteTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = b.cfg.Admission.MaxConns
	}
	if cfg.Logger == nil {
		cfg.Logger = b.cfg.Logger
	}
	return cfg
}

// checkEpoll refuses what the epoll engine's plan cannot serve.
func (b *Broker) checkEpoll() error {
	p, err := engine.PlanEpoll(b.epollConfig())
	if err != nil {
		return err
	}
	if p.PrivateFDs && b.cfg.Sink != nil {
		return errShardedSink
	}
	return nil
}

// serveEpoll runs the epoll engine on ln.
func (b *Broker) serveEpoll(ctx context.Context, ln net.Listener) error {
	if err := b.checkEpoll(); err != nil {
		ln.Close()
		return fmt.Errorf("broker: epoll on %s: %w", ln.Addr(), err)
	}
	cfg := b.epollConfig()
	if m := b.metrics; m != nil && cfg.OnBytes == nil {
		cfg.OnBytes = func(in, out int) {
			if in > 0 {
				m.BytesIn.Add(float64(in))
			}
			if out > 0 {
				m.BytesOut.Add(float64(out))
			}
		}
	}
	return engine.ServeEpoll(ctx, ln, cfg, b.newDriven)
}

// newDriven makes the session of a connection the epoll engine accepted:
// ServeConn's admission and counting, without a goroutine. It allocates
// only the session.Conn: the Config is the broker's, and the release
// function one of two made in New.
func (b *Broker) newDriven(wake func()) (*session.Conn, func()) {
	code := b.adm.Admit(time.Now())
	release := b.releaseRefused
	if code == mqtt.Success {
		b.accepted()
		release = b.releaseAccepted
	}
	return session.NewDriven(&b.cfg.Session, b, code, wake), release
}

// accepted counts an admitted connection.
func (b *Broker) accepted() {
	b.Count("connections_accepted")
	if m := b.metrics; m != nil {
		m.ConnectionsAccepted.Inc()
		m.ConnectionsCurrent.Inc()
	}
}

// ServeConn serves one connection, of any kind, in the caller's goroutine
// and closes it.
func (b *Broker) ServeConn(ctx context.Context, nc net.Conn) {
	code := b.adm.Admit(time.Now())
	if code == mqtt.Success {
		b.accepted()
		defer b.adm.Release()
		if m := b.metrics; m != nil {
			defer m.ConnectionsCurrent.Dec()
			nc = &countingConn{Conn: nc, in: m.BytesIn, out: m.BytesOut}
		}
	}
	c := session.NewConn(&b.cfg.Session, b, nc, code)
	c.Serve(ctx)
	b.gauges()
}

// Count implements session.Hub.
func (b *Broker) Count(name string) {
	if b.metrics != nil {
		b.observe(name)
	}
	v, ok := b.counts.Load(name)
	if !ok {
		v, _ = b.counts.LoadOrStore(name, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// Counts returns a copy of the broker's counters (connections, messages,
// disconnects by reason, drops); each is incremented before its effect is
// visible to a client (a disconnect is counted before the socket closes) merged with the admission counters
// ("admission_<reason>").
func (b *Broker) Counts() map[string]uint64 {
	out := make(map[string]uint64)
	b.counts.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	for k, v := range b.adm.Counts() {
		out["admission_"+k] = v
	}
	return out
}

// Router implements session.Hub.
func (b *Broker) Router() *router.Router { return b.router }

// online reports whether client's session has a connection.
func (b *Broker) online(client string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.sessions[client]
	return e != nil && e.owner != nil
}

// Sessions returns how many sessions the broker holds, online or not.
func (b *Broker) Sessions() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sessions)
}

// Open implements session.Hub: race-free takeover. A connection holding the
// id is killed with 0x8E Session taken over and Open waits, without the
// lock, until it has finished (its will and expiry handled); only then does
// the new connection look again [MQTT-3.1.4-2] [MQTT-3.1.4-3].
func (b *Broker) Open(c *session.Conn, id string, clean bool) (*session.State, bool) {
	for {
		b.mu.Lock()
		e := b.sessions[id]
		if e != nil && e.owner != nil {
			old := e.owner
			b.mu.Unlock()
			old.Kill(mqtt.SessionTakenOver, session.ReasonTakenOver)
			<-old.Done()
			continue
		}
		if e != nil {
			// [MQTT-3.1.3-9] a reconnection within the will delay cancels
			// the will; the expiry timer stops too.
			e.stopTimers()
			e.off = nil
			if clean {
				// [MQTT-3.1.2-4] Clean Start discards the old session.
				b.dropLocked(id, e)
				e = nil
			}
		}
		present := e != nil // [MQTT-3.2.2-2] [MQTT-3.2.2-3]
		if e == nil {
			e = b.newEntry(id, c.SessionExpiry() > 0)
			b.sessions[id] = e
		}
		e.owner = c
		e.version, e.expiryInterval, e.offSince = c.Version(), c.SessionExpiry(), 0
		b.saveLocked(id, e)
		b.mu.Unlock()
		return e.st, present
	}
}

// newEntry makes an empty session for id, persisted if there is a store
// and persist is set. A session that ends with its connection (expiry 0,
// which can never become non-zero [MQTT-3.14.2-2]) is not: nothing of it
// survives a restart, so its in-flight messages are not written (its
// acknowledgements still wait for the changes it causes elsewhere).
func (b *Broker) newEntry(id string, persist bool) *entry {
	st := session.NewState(id, b.cfg.Session.MaxQueued, b.countFn)
	e := &entry{st: st}
	if b.store != nil {
		e.persist = &persister{b: b}
		e.persist.keep.Store(persist)
		st.SetPersister(e.persist)
	}
	return e
}

func stopTimer(t **time.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}

// dropLocked ends session e of id: its subscriptions leave the router.
// b.mu is held.
func (b *Broker) dropLocked(id string, e *entry) {
	for _, s := range e.st.Subscriptions() {
		_, _ = b.router.Unsubscribe(id, s.Filter)
	}
	delete(b.sessions, id)
	if p := e.persist; p != nil && p.keep.Load() {
		// Under the session's lock: no in-flight change of it can be
		// queued after the delete (and outlive it in the store).
		e.st.Ended(func() {
			p.keep.Store(false)
			b.deleteStored(id)
		})
	}
	e.stopTimers()
}

// Closed implements session.Hub. A session whose expiry interval is 0 ends
// now [MQTT-3.1.2-5 (5.0)]; another waits that long (forever for a 3.1.1
// persistent session). The will goes now, or after its Will Delay Interval,
// or when the session ends, whichever is first [MQTT-3.1.3-9].
func (b *Broker) Closed(c *session.Conn, st *session.State, will *mqtt.Will) {
	id := c.ClientID()
	b.mu.Lock()
	e := b.sessions[id]
	if e == nil || e.owner != c {
		b.mu.Unlock()
		if will != nil {
			b.publishWill(id, will)
		}
		return
	}
	e.owner = nil
	e.expiryInterval = c.SessionExpiry()
	e.setDisconnectedAt(time.Now())
	expiry := e.expiryInterval
	if expiry == 0 {
		b.dropLocked(id, e)
		b.mu.Unlock()
		if will != nil {
			b.publishWill(id, will)
		}
		return
	}
	var now *mqtt.Will
	switch {
	case will == nil:
	case will.Properties.WillDelay == 0:
		now = will
	default:
		e.offline().will = will
	}
	if !b.closed {
		// Shutting down starts no timers: a stored session and its delayed
		// will are picked up again by the next start.
		if expiry != math.MaxUint32 {
			e.offline().expiry = time.AfterFunc(time.Duration(expiry)*time.Second, func() { b.expire(id, e) })
		}
		// A will whose delay outlasts the session goes when the session
		// ends (expire publishes it), not on a timer of its own.
		if w := e.pendingWill(); w != nil && w.Properties.WillDelay < expiry {
			d := time.Duration(w.Properties.WillDelay) * time.Second
			e.off.willTimer = time.AfterFunc(d, func() { b.delayedWill(id, e) })
		}
	} else if b.store == nil && e.pendingWill() != nil {
		now = e.takeWill() // nowhere to keep it
	}
	b.saveLocked(id, e)
	b.mu.Unlock()
	if now != nil {
		b.publishWill(id, now)
	}
}

// expire ends session e if it is still offline and still id's session.
func (b *Broker) expire(id string, e *entry) {
	b.mu.Lock()
	if b.closed || b.sessions[id] != e || e.owner != nil {
		b.mu.Unlock()
		return
	}
	will := e.takeWill()
	b.dropLocked(id, e)
	b.Count("sessions_expired")
	b.mu.Unlock()
	if will != nil {
		b.publishWill(id, will)
	}
}

func (b *Broker) delayedWill(id string, e *entry) {
	b.mu.Lock()
	var will *mqtt.Will
	if !b.closed && b.sessions[id] == e && e.owner == nil {
		will = e.takeWill()
		b.saveLocked(id, e)
	}
	b.mu.Unlock()
	if will != nil {
		b.publishWill(id, will)
	}
}

// publishWill publishes a will as if client id had sent it.
func (b *Broker) publishWill(id string, w *mqtt.Will) {
	b.Count("wills_published")
	m := willMessage(id, w, time.Now())
	if w.Retain {
		b.Retain(m)
	}
	b.Route(m)
}

// Sink is the part of *sink.Pipeline the broker uses.
type Sink interface {
	Match(topic string) bool
	Submit(r sink.Record) error
}

// Route implements session.Hub: each matching session gets its copy, and the
// sink its record when it matches.
func (b *Broker) Route(m *router.Message) bool {
	if s := b.cfg.Sink; s != nil && s.Match(m.Topic) {
		err := s.Submit(sink.Record{Time: time.Now(), ClientID: m.From, Topic: m.Topic, QoS: byte(m.QoS),
			Retain: m.Retain, Payload: m.Payload})
		if err != nil {
			b.Count("sink_refused")
			b.log.Warn("sink refused a record", "topic", m.Topic, "err", err)
		}
	}
	b.Count("messages_in")
	b.Count(qosCounter(&messagesIn, "messages_in_", byte(m.QoS)))
	ds := b.router.Route(m, nil, b.online)
	if len(ds) == 0 {
		b.Count("no_subscriber")
	}
	for _, d := range ds {
		b.mu.Lock()
		e := b.sessions[d.Client]
		b.mu.Unlock()
		if e == nil {
			continue
		}
		// [MQTT-3.3.1-12] without Retain As Published the flag is 0;
		// [MQTT-3.3.1-13] with it, the flag is the publisher's.
		b.Count("messages_out")
		b.Count(qosCounter(&messagesOut, "messages_out_", byte(d.QoS)))
		e.st.Deliver(m, d.QoS, d.RetainAsPublished && m.Retain, d.SubIDs)
	}
	return len(ds) > 0
}

// The per-QoS counter names, made once: Route counts every message in and
// every delivery out, and building the name each time cost two allocations
// per message.
var (
	messagesIn  = [3]string{"messages_in_0", "messages_in_1", "messages_in_2"}
	messagesOut = [3]string{"messages_out_0", "messages_out_1", "messages_out_2"}
)

// qosCounter is prefix + ops.QoSLabel(qos), from names for QoS 0-2.
func qosCounter(names *[3]string, prefix string, qos byte) string {
	if int(qos) < len(names) {
		return names[qos]
	}
	return prefix + ops.QoSLabel(qos)
}

// Shutdown marks the broker closed: session expiry and delayed-will timers
// stop and no new ones start (sessions stay as they are). Run calls it when
// its context ends.
func (b *Broker) Shutdown() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for _, e := range b.sessions {
		e.stopTimers()
	}
}

// Run binds the configured listeners and serves them until ctx is done. Then
// every client is sent DISCONNECT 0x8B Server shutting down (5.0) and
// closed, and Run returns nil once all connections have ended, or the
// first listener error. ready, if not nil, is called with the bound
// addresses once they listen.
func (b *Broker) Run(ctx context.Context, ready func(map[string]net.Addr)) error {
	set, err := listeners.Open(b.cfg.Listeners)
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	for kind, a := range set.Addrs() {
		b.log.Info("listening", "kind", kind, "addr", a.String())
	}
	if ready != nil {
		ready(set.Addrs())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if b.metrics != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					b.gauges()
				}
			}
		}()
	}
	if b.cfg.SysInterval > 0 {
		wg.Add(1)
		go b.runSys(ctx, &wg, b.cfg.SysInterval)
	}
	stop := context.AfterFunc(ctx, b.Shutdown)
	defer stop()
	var tcp func(context.Context, net.Listener) error
	if b.cfg.Engine == EngineEpoll {
		tcp = b.serveEpoll
	}
	err = set.ServeWith(ctx, b.ServeConn, tcp)
	cancel()
	wg.Wait()
	if b.w != nil {
		// Every connection has ended: commit what they left queued, then
		// stop the store's writer.
		b.w.Close()
	}
	b.log.Info("stopped", "sessions", b.Sessions())
	return err
}
