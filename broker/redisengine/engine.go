// Package redisengine is a broker.Engine on Redis: rooms are sequenced and
// stored in Redis, so that every node of a cluster serves the same order
// and history, and each node receives the rooms it tracks over Redis
// PUB/SUB.
//
// Per room, Redis holds a hash (epoch, last offset, the run_id of the Redis
// process that made the epoch) and a stream whose entry IDs are the offsets.
// One Lua script per publish gives the next offset, appends to the stream
// and publishes the frame on the room's channel, atomically, so the
// channel's order is the offset order. The scripts are bound to the Redis
// process that loaded them (see scripts.go), so a Redis restart, even from
// a snapshot, gives every room a new epoch rather than offsets used twice.
//
// A node subscribes to a room's channel on one dedicated PUB/SUB connection
// per Redis server while the room is tracked. Frames lost in between (the
// connection dropped, Redis killed it) are fetched from the stream in
// order; only entries the stream no longer holds reach the Sink as a gap.
package redisengine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/roomcast/roomcast/broker"
)

// Defaults of Config's fields.
const (
	DefaultPrefix      = "rc"
	DefaultTimeout     = 2 * time.Second
	DefaultMetaTTL     = 24 * time.Hour
	DefaultPresenceTTL = 30 * time.Second
	DefaultLinger      = time.Second
)

// Config configures an Engine. Every node of a cluster must use the same
// Prefix and history settings with the same Addrs in the same order.
type Config struct {
	// Addrs are the Redis servers, host:port, one per shard; rooms are
	// spread over them by a hash of their names, in this order, so
	// appending one moves about 1/n of the rooms (which then start new
	// epochs). Required.
	Addrs []string

	// Username and Password authenticate to every server; zero values
	// send no AUTH.
	Username, Password string

	// TLS, when not nil, is the configuration every connection to every
	// server speaks TLS with: commands and PUB/SUB alike (rueidis dials
	// them all the same way). An empty ServerName is each address's host.
	// Nil, the default, is plaintext. It must not be changed after New.
	TLS *tls.Config

	// Prefix starts every key and channel, so that several clusters can
	// share a Redis. Zero means DefaultPrefix ("rc").
	Prefix string

	// Timeout bounds each call's wait on Redis, dialling included: past it
	// the call fails with an error wrapping broker.ErrUnavailable. Zero
	// means DefaultTimeout (2 s).
	Timeout time.Duration

	// HistoryMessages is how many of a room's newest messages its stream
	// keeps (exactly: MAXLEN) for Read, Track's backfill and healing.
	// Zero means broker.DefaultHistoryMessages (1024).
	HistoryMessages int

	// HistoryTTL is how long a message stays readable: the stream expires
	// HistoryTTL after the room's last publish, and Read and Track leave
	// out entries older than that. Zero means broker.DefaultHistoryTTL
	// (5 minutes).
	HistoryTTL time.Duration

	// MetaTTL is how long a room's epoch and last offset outlive its last
	// publish; after that the room starts again with a new epoch. Zero
	// means DefaultMetaTTL (24 hours).
	MetaTTL time.Duration

	// PresenceTTL is how long a member stays listed after it was added;
	// zero means DefaultPresenceTTL (30 s). PresenceMembers bounds a
	// room's members, as broker.WithPresenceLimit; zero means
	// broker.DefaultPresenceMembers.
	PresenceTTL     time.Duration
	PresenceMembers int

	// KeyWindow is how long a publish's idempotency key is remembered,
	// and KeysPerRoom how many one room remembers at most (the oldest are
	// forgotten first), as broker.WithIdempotency. Zero means
	// broker.DefaultIdempotencyWindow (5 minutes) and
	// broker.DefaultIdempotencyKeys (10,000).
	KeyWindow   time.Duration
	KeysPerRoom int

	// Linger is how long a room stays subscribed after Untrack, so that
	// a subscriber that leaves and comes back costs nothing. Zero means
	// DefaultLinger (1 s); a negative value unsubscribes at once.
	Linger time.Duration

	// Sink receives the entries of tracked rooms: the hub. Nil drops them.
	Sink broker.Sink
}

// Engine is a broker.Engine on one or more Redis servers. It is safe for
// concurrent use. Its goroutines (one PUB/SUB session per server, a
// resync per room that lost frames, Untrack's timers) all end in Close.
type Engine struct {
	cfg      Config
	sink     broker.Sink
	shards   []*shard
	stats    counters
	members  members
	sessions sessions

	life context.Context // ends with Close
	end  context.CancelFunc

	mu      sync.Mutex // guards closing and workers' Add
	closing bool
	workers sync.WaitGroup
	closed  sync.Once

	reapFrom int          // where the heartbeat's next reap of tracked rooms starts; its goroutine's alone
	sinkMu   sync.RWMutex // held for reading around each call of the Sink
	stopped  bool         // under sinkMu: Close has begun, the Sink is not called again
}

var (
	_ broker.Engine           = (*Engine)(nil)
	_ broker.KeyedPublisher   = (*Engine)(nil)
	_ broker.SessionDirectory = (*Engine)(nil)
)

type counters struct {
	bootstraps, sessions, frames, events, badFrames, dropped, healed, resets atomic.Uint64
}

// Stats is a snapshot of an engine's counters since New.
type Stats struct {
	Bootstraps uint64 // script loads: one per Redis process seen per shard, and after SCRIPT FLUSH
	Sessions   uint64 // PUB/SUB sessions started: more than the shards means reconnects
	Frames     uint64 // message frames received over PUB/SUB
	Events     uint64 // presence event frames received (the Sink has no method for them yet)
	BadFrames  uint64 // frames that did not parse, dropped
	Dropped    uint64 // frames dropped because a room had too many waiting; fetched from the stream instead
	Healed     uint64 // entries fetched from the stream and delivered because their frames were missed
	Resets     uint64 // gaps and new epochs the Sink was shown: entries lost for good
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{
		Bootstraps: e.stats.bootstraps.Load(),
		Sessions:   e.stats.sessions.Load(),
		Frames:     e.stats.frames.Load(),
		Events:     e.stats.events.Load(),
		BadFrames:  e.stats.badFrames.Load(),
		Dropped:    e.stats.dropped.Load(),
		Healed:     e.stats.healed.Load(),
		Resets:     e.stats.resets.Load(),
	}
}

// New connects to every server of cfg.Addrs and loads the scripts into
// each, within ctx and cfg.Timeout; it fails, naming the server, if one
// cannot be reached. Close releases what it made.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if len(cfg.Addrs) == 0 {
		return nil, errors.New("redisengine: no Redis address")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	cfg.Timeout = cmpOr(cfg.Timeout, DefaultTimeout)
	cfg.HistoryMessages = cmpOr(cfg.HistoryMessages, broker.DefaultHistoryMessages)
	cfg.HistoryTTL = cmpOr(cfg.HistoryTTL, broker.DefaultHistoryTTL)
	cfg.MetaTTL = cmpOr(cfg.MetaTTL, DefaultMetaTTL)
	cfg.PresenceTTL = cmpOr(cfg.PresenceTTL, DefaultPresenceTTL)
	cfg.PresenceMembers = cmpOr(cfg.PresenceMembers, broker.DefaultPresenceMembers)
	cfg.Linger = cmpOr(cfg.Linger, DefaultLinger)
	cfg.KeyWindow = cmpOr(cfg.KeyWindow, broker.DefaultIdempotencyWindow)
	cfg.KeysPerRoom = cmpOr(cfg.KeysPerRoom, broker.DefaultIdempotencyKeys)
	for _, c := range []struct {
		name string
		bad  bool
	}{
		{"Timeout", cfg.Timeout < 0},
		{"HistoryMessages", cfg.HistoryMessages < 0},
		{"HistoryTTL", cfg.HistoryTTL < time.Millisecond},
		{"MetaTTL", cfg.MetaTTL < time.Millisecond},
		{"PresenceTTL", cfg.PresenceTTL < time.Millisecond},
		{"PresenceMembers", cfg.PresenceMembers < 0},
		{"KeyWindow", cfg.KeyWindow < time.Millisecond},
		{"KeysPerRoom", cfg.KeysPerRoom < 0},
	} {
		if c.bad {
			return nil, fmt.Errorf("redisengine: Config.%s is negative or under a millisecond", c.name)
		}
	}
	e := &Engine{cfg: cfg, sink: cfg.Sink, members: members{rooms: make(map[string]map[string]struct{})}}
	if e.sink == nil {
		e.sink = discard{}
	}
	e.life, e.end = context.WithCancel(context.Background())
	for _, addr := range cfg.Addrs {
		client, err := rueidis.NewClient(rueidis.ClientOption{
			InitAddress:       []string{addr},
			Username:          cfg.Username,
			Password:          cfg.Password,
			TLSConfig:         cfg.TLS,
			ForceSingleClient: true,
			DisableCache:      true, // keys change with every publish: nothing to cache
			DisableRetry:      true, // a publish whose reply was lost must not run twice
			AlwaysPipelining:  true,
			Dialer:            net.Dialer{Timeout: cfg.Timeout, KeepAlive: 400 * time.Millisecond}, // also rueidis's idle PING interval: a hung server shows within KeepAlive+Timeout
			ConnWriteTimeout:  cfg.Timeout,
		})
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("%w: redis %s: %v%s", broker.ErrUnavailable, addr, err, tlsHint(cfg.TLS, err))
		}
		e.shards = append(e.shards, newShard(e, addr, client))
	}
	for _, s := range e.shards {
		bctx, cancel := e.bound(ctx)
		_, err := s.bootstrap(bctx, nil)
		cancel()
		if err != nil {
			e.Close()
			return nil, e.unavailable(ctx, s, err)
		}
	}
	for _, s := range e.shards {
		e.spawn(s.run)
	}
	e.spawn(e.heartbeat)
	return e, nil
}

// Factory returns a function that makes an engine with cfg for a hub
// (broker.WithEngine): it delivers to the hub, and keeps the hub's history
// limits. ctx bounds New's connecting.
func Factory(ctx context.Context, cfg Config) broker.EngineFunc {
	return func(hub broker.EngineConfig) (broker.Engine, error) {
		cfg.Sink = hub.Sink
		cfg.HistoryMessages, cfg.HistoryTTL = hub.HistoryMessages, hub.HistoryTTL
		cfg.PresenceMembers = hub.PresenceMembers
		cfg.KeyWindow, cfg.KeysPerRoom = hub.KeyWindow, hub.KeysPerRoom
		e, err := New(ctx, cfg)
		if err != nil {
			return nil, err // a nil interface, not one holding a nil *Engine
		}
		return e, nil
	}
}

// Close stops the engine's goroutines and closes its connections; later
// calls fail with broker.ErrClosed. It is idempotent. The Sink is not
// called once Close returns. Close must not be called from the Sink.
func (e *Engine) Close() error {
	e.closed.Do(func() {
		e.mu.Lock()
		e.closing = true
		e.mu.Unlock()
		e.sinkMu.Lock() // waits for the Sink's calls under way
		e.stopped = true
		e.sinkMu.Unlock()
		e.end()
		for _, s := range e.shards {
			s.stopLingers()
		}
		e.workers.Wait()
		for _, s := range e.shards {
			s.client.Close()
		}
	})
	return nil
}

// deliver and reset call the Sink, unless Close began.
func (e *Engine) deliver(room string, en broker.Entry) {
	e.sinkMu.RLock()
	defer e.sinkMu.RUnlock()
	if !e.stopped {
		e.sink.Deliver(room, en)
	}
}

func (e *Engine) deliverEvent(room string, ev broker.Event) {
	e.sinkMu.RLock()
	defer e.sinkMu.RUnlock()
	if !e.stopped {
		e.sink.DeliverEvent(room, ev)
	}
}

func (e *Engine) reset(room string, head broker.Position) {
	e.sinkMu.RLock()
	defer e.sinkMu.RUnlock()
	if !e.stopped {
		e.sink.Reset(room, head)
	}
}

// spawn runs fn on a goroutine that Close waits for, unless Close began.
func (e *Engine) spawn(fn func()) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return false
	}
	e.workers.Add(1)
	go func() {
		defer e.workers.Done()
		fn()
	}()
	return true
}

func (e *Engine) isClosed() bool { return e.life.Err() != nil }

// bound is ctx bounded by cfg.Timeout and by the engine's life.
func (e *Engine) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	stop := context.AfterFunc(e.life, cancel)
	return ctx, func() { stop(); cancel() }
}

// unavailable is the error of a call to s that failed with err: the
// caller's own context error if that ended, broker.ErrClosed if the engine
// did, and otherwise err wrapped in broker.ErrUnavailable.
func (e *Engine) unavailable(caller context.Context, s *shard, err error) error {
	if d, ok := caller.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded // its timer may not have fired yet, but ours, set to it, did
	}
	switch {
	case caller.Err() != nil:
		return caller.Err()
	case e.isClosed():
		return broker.ErrClosed
	}
	return fmt.Errorf("%w: redis %s: %v", broker.ErrUnavailable, s.addr, err)
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

type discard struct{}

func (discard) Deliver(string, broker.Entry)      {}
func (discard) Reset(string, broker.Position)     {}
func (discard) DeliverEvent(string, broker.Event) {}

// Ping reports whether the engine can serve: nil when at least one shard
// answers a PING within the timeout (rooms on the others fail on their
// own), and the last shard's error wrapped in broker.ErrUnavailable when
// none does.
func (e *Engine) Ping(ctx context.Context) error {
	if e.isClosed() {
		return broker.ErrClosed
	}
	var err error
	for _, s := range e.shards {
		bctx, cancel := e.bound(ctx)
		err = s.client.Do(bctx, s.client.B().Ping().Build()).Error()
		cancel()
		if err == nil {
			return nil
		}
		err = e.unavailable(ctx, s, err)
	}
	return err
}
