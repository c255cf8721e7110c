package broker

import (
	"cmp"
	"context"
	"errors"
	"hash/maphash"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of Publish and Join.
var (
	ErrClosed       = errors.New("broker: closed")
	ErrTooManyRooms = errors.New("broker: too many rooms")
	ErrOverBudget   = errors.New("broker: the messages retained by every room have reached the byte budget")
)

const shardCount = 64 // rooms are spread over shards so joins do not contend on one lock

// Hub is the node-local broker: one process, no persistence, so every room
// gets a new epoch when the process restarts. It is safe for concurrent use.
type Hub struct {
	cfg      config
	maxSlots int // ring slots: the larger of backlog and history, as a power of two
	seed     maphash.Seed
	shards   [shardCount]shard
	closed   atomic.Bool
	stats    counters
	rooms    atomic.Int64 // rooms in memory
	retained atomic.Int64 // bytes of entries in every room's rings, and of their idempotency keys
	keys     atomic.Int64 // idempotency keys remembered by every room
	owners   owners       // tenants' use, for quotas

	sweepHook func() // tests only: called by the janitor for each room, under its locks

	stop      chan struct{}
	engine    Engine             // nil: the hub sequences and stores rooms itself
	life      context.Context    // cancelled by Close: ends the work below
	end       context.CancelFunc // cancels life
	workers   sync.WaitGroup     // goroutines waiting on the engine for a join or a leave
	workersMu sync.Mutex         // guards closing against workers.Add
	closing   bool               // Close has begun: spawn starts nothing
	closeOnce sync.Once
	janitor   sync.WaitGroup
}

type shard struct {
	mu    sync.Mutex
	rooms map[string]*room
}

type counters struct {
	published, encoded, received, delivered, lagged, reclaimed, deduplicated, panics atomic.Uint64
}

// Stats is a snapshot of a broker's counters since it started.
type Stats struct {
	Published uint64 // messages accepted
	Encoded   uint64 // messages encoded: one per message that reached a room, whatever its size
	Received  uint64 // messages sequenced elsewhere and taken through Deliver, without an encode
	Delivered uint64 // messages handed to subscriber streams
	Lagged    uint64 // subscribers reported as lagging or stalled
	Rooms     int    // rooms in memory now
	Retained  int64  // bytes of messages and presence events held by every room now
	Reclaimed uint64 // idle rooms whose history was dropped to stay within WithMaxRetainedBytes
	Panics    uint64 // panics recovered in the janitor, which went on

	Deduplicated uint64 // publishes answered from an idempotency key, appending nothing
	Keys         int64  // idempotency keys remembered by every room now (their bytes count in Retained)
}

// New returns an empty hub: by default its own sequencer, in memory, and
// with WithEngine the node-local side of an engine. Close stops it.
func New(opts ...Option) (*Hub, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	slots := max(cfg.backlogMessages, cfg.historyMessages)
	b := &Hub{cfg: cfg, seed: maphash.MakeSeed(), maxSlots: 1 << bits.Len(uint(slots-1)), stop: make(chan struct{})}
	b.life, b.end = context.WithCancel(context.Background())
	for i := range b.shards {
		b.shards[i].rooms = make(map[string]*room)
	}
	if cfg.engine != nil {
		if b.engine, err = cfg.engine(EngineConfig{Sink: b, HistoryMessages: cfg.historyMessages, HistoryTTL: cfg.historyTTL, PresenceMembers: cfg.presenceMembers, KeyWindow: cfg.keyWindow, KeysPerRoom: cfg.keysPerRoom}); err != nil {
			b.end()
			return nil, err
		}
		return b, nil // history lives in the engine: nothing to expire here
	}
	every := cfg.keyWindow // the janitor expires idempotency keys, and history if any
	if cfg.historyMessages > 0 {
		every = min(every, cfg.historyTTL)
	}
	b.janitor.Add(1)
	go b.sweep(min(max(every/4, 10*time.Millisecond), time.Second))
	return b, nil
}

// Close makes later calls fail with ErrClosed, stops the janitor and the
// work waiting on the engine, and closes the engine. It is idempotent;
// subscribers keep what they hold.
func (b *Hub) Close() error {
	b.closed.Store(true)
	var err error
	b.closeOnce.Do(func() {
		b.workersMu.Lock()
		b.closing = true
		b.workersMu.Unlock()
		close(b.stop)
		b.end()
		b.janitor.Wait()
		b.workers.Wait()
		if b.engine != nil {
			err = b.engine.Close()
		}
	})
	return err
}

// Ping reports whether the hub can serve: with an engine, whether the
// engine's store answers (see Engine.Ping); without, whether it is open.
func (b *Hub) Ping(ctx context.Context) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if b.engine == nil {
		return nil
	}
	return b.engine.Ping(ctx)
}

// Stats returns the broker's counters.
func (b *Hub) Stats() Stats {
	return Stats{
		Published: b.stats.published.Load(),
		Encoded:   b.stats.encoded.Load(),
		Received:  b.stats.received.Load(),
		Delivered: b.stats.delivered.Load(),
		Lagged:    b.stats.lagged.Load(),
		Rooms:     int(b.rooms.Load()),
		Retained:  b.retained.Load(),
		Reclaimed: b.stats.reclaimed.Load(),
		Panics:    b.stats.panics.Load(),

		Deduplicated: b.stats.deduplicated.Load(),
		Keys:         b.keys.Load(),
	}
}

// BacklogLimits returns how far a subscriber may fall behind in one room, in
// messages and bytes, before it is reported as lagging.
func (b *Hub) BacklogLimits() (messages, bytes int) {
	return b.cfg.backlogMessages, b.cfg.backlogBytes
}

func (b *Hub) shard(name string) *shard {
	return &b.shards[maphash.String(b.seed, name)%shardCount]
}

// lockRoom returns the live room called name locked for writing, creating it
// if create is set; nil if it does not exist and create is not set.
func (b *Hub) lockRoom(name string, create bool, by *owner) (*room, error) {
	sh := b.shard(name)
	for {
		sh.mu.Lock()
		r := sh.rooms[name]
		if r == nil && create {
			if by != nil && by.rooms.Load() >= int64(b.cfg.roomQuota) {
				sh.mu.Unlock()
				return nil, ErrRoomQuota
			}
			if b.rooms.Add(1) > int64(b.cfg.maxRooms) {
				b.rooms.Add(-1)
				sh.mu.Unlock()
				return nil, ErrTooManyRooms
			}
			r = newRoom(name, sh, &b.retained)
			r.keys.count = &b.keys
			if by != nil {
				by.rooms.Add(1)
				r.owner = by
			}
			if b.cfg.encodeEach {
				r.msgs.keepPlain()
			}
			if b.engine != nil {
				r.tracking = newTracking()
			}
			sh.rooms[name] = r
		}
		sh.mu.Unlock()
		if r == nil {
			return nil, nil
		}
		r.mu.Lock()
		if !r.dead {
			return r, nil
		}
		r.mu.Unlock() // freed after we found it: look again
	}
}

// free removes r from its shard. Caller holds the shard's lock and r.mu.
func (b *Hub) free(r *room) {
	r.msgs.clear()
	r.events.clear()
	r.keys.clear()
	if r.owner != nil {
		r.owner.rooms.Add(-1)
	}
	r.dead = true
	delete(r.shard.rooms, r.name)
	b.rooms.Add(-1)
}

// readRoom returns the live room called name locked for reading, or nil.
func (b *Hub) readRoom(name string) *room {
	sh := b.shard(name)
	sh.mu.Lock()
	r := sh.rooms[name]
	sh.mu.Unlock()
	if r == nil {
		return nil
	}
	r.mu.RLock()
	if r.dead { // freed meanwhile: it held nothing
		r.mu.RUnlock()
		return nil
	}
	return r
}

// retention is how many messages r keeps. Caller holds r.mu.
func (b *Hub) retention(r *room) int {
	if r.subs > 0 {
		return b.maxSlots
	}
	return b.cfg.historyMessages
}

// release frees r if it has no subscriber and retains nothing.
func (b *Hub) release(r *room) {
	r.shard.mu.Lock()
	r.mu.Lock()
	if !r.dead && r.subs == 0 && b.engine != nil {
		b.free(r) // its history is the engine's
		b.engine.Untrack(r.name)
	} else if !r.dead && r.subs == 0 {
		r.msgs.trim(b.cfg.historyMessages, b.cfg.backlogBytes)
		if r.msgs.retained() == 0 {
			b.free(r)
		}
	}
	r.mu.Unlock()
	r.shard.mu.Unlock()
}

// sweep expires history and frees the rooms left empty, until Close.
func (b *Hub) sweep(every time.Duration) {
	defer b.janitor.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			b.sweepOnce(now)
		}
	}
}

// sweepOnce is one round of the janitor. A panic in it is counted in
// Stats.Panics and the janitor goes on: every lock it takes is released by
// a deferred call, so nothing stays held.
func (b *Hub) sweepOnce(now time.Time) {
	defer func() {
		if v := recover(); v != nil {
			b.stats.panics.Add(1)
		}
	}()
	before := now.Add(-b.cfg.historyTTL).UnixNano()
	keysBefore := now.Add(-b.cfg.keyWindow).UnixNano()
	for i := range b.shards {
		b.sweepShard(&b.shards[i], before, keysBefore)
	}
	b.owners.prune()
	if b.retained.Load() > b.cfg.maxRetained/10*9 {
		b.reclaim(b.cfg.maxRetained / 4 * 3)
	}
}

// sweepShard expires the history and keys of sh's rooms and frees the rooms
// left empty.
func (b *Hub) sweepShard(sh *shard, before, keysBefore int64) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, r := range sh.rooms {
		func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if b.sweepHook != nil {
				b.sweepHook()
			}
			if b.cfg.historyMessages > 0 {
				r.msgs.expire(before)
			}
			r.keys.expire(keysBefore)
			if r.subs == 0 && r.msgs.retained() == 0 {
				b.free(r)
			}
		}()
	}
}

// reclaim drops the whole history of idle rooms (rooms without
// subscribers), least recently published first, until every room together
// retains at most goal bytes or no idle room is left. A client that resumes
// into a dropped range is told recovered false, as for any expired history.
func (b *Hub) reclaim(goal int64) {
	type idle struct {
		r      *room
		newest int64
	}
	var rooms []idle
	for i := range b.shards {
		sh := &b.shards[i]
		sh.mu.Lock()
		for _, r := range sh.rooms {
			r.mu.RLock()
			if r.subs == 0 && r.msgs.retained() > 0 {
				rooms = append(rooms, idle{r, r.msgs.at(r.msgs.head).time})
			}
			r.mu.RUnlock()
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(rooms, func(a, b idle) int { return cmp.Compare(a.newest, b.newest) })
	for _, x := range rooms {
		if b.retained.Load() <= goal {
			return
		}
		sh := x.r.shard
		sh.mu.Lock()
		x.r.mu.Lock()
		if !x.r.dead && x.r.subs == 0 {
			b.free(x.r)
			b.stats.reclaimed.Add(1)
		}
		x.r.mu.Unlock()
		sh.mu.Unlock()
	}
}
