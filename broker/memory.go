// Package broker is roomcast's core: it sequences each room's messages,
// encodes every message once, keeps the encoded bytes in a per-room ring and
// lets subscribers copy out, by reference, whatever lies past their cursor.
//
// Publishing appends to one ring and wakes only the subscribers that are
// parked; a busy subscriber picks up everything new in one batch when its
// previous write completes. No subscriber has a queue of its own: a room's
// ring is its subscribers' shared backlog, bounded in messages and bytes, and
// a subscriber whose cursor falls further behind than that bound is reported
// as lagging rather than skipped.
package broker

import (
	"context"
	"errors"
	"hash/maphash"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/types/known/timestamppb"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// ErrClosed is returned by calls on a closed broker.
var ErrClosed = errors.New("broker: closed")

const shardCount = 64 // rooms are spread over shards so joins do not contend on one lock

// Memory is the in-memory broker: one process, no persistence. It is safe for
// concurrent use.
type Memory struct {
	cfg      config
	maxSlots int
	seed     maphash.Seed
	shards   [shardCount]shard
	closed   atomic.Bool
	stats    counters
}

type shard struct {
	mu    sync.Mutex
	rooms map[string]*room
}

type counters struct {
	published, encoded, delivered, lagged atomic.Uint64
}

// Stats is a snapshot of a broker's counters since it started.
type Stats struct {
	Published uint64 // messages sequenced
	Encoded   uint64 // messages encoded: equal to Published, whatever the room sizes
	Delivered uint64 // messages handed to subscriber streams
	Lagged    uint64 // subscribers reported as lagging
	Rooms     int    // rooms in memory now
}

// New returns an empty in-memory broker.
func New(opts ...Option) (*Memory, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	b := &Memory{cfg: cfg, seed: maphash.MakeSeed(), maxSlots: 1 << bits.Len(uint(cfg.backlogMessages-1))}
	for i := range b.shards {
		b.shards[i].rooms = make(map[string]*room)
	}
	return b, nil
}

// Close makes later calls fail with ErrClosed. It is idempotent; subscribers
// keep what they hold.
func (b *Memory) Close() error {
	b.closed.Store(true)
	return nil
}

// Stats returns the broker's counters.
func (b *Memory) Stats() Stats {
	n := 0
	for i := range b.shards {
		sh := &b.shards[i]
		sh.mu.Lock()
		n += len(sh.rooms)
		sh.mu.Unlock()
	}
	return Stats{
		Published: b.stats.published.Load(),
		Encoded:   b.stats.encoded.Load(),
		Delivered: b.stats.delivered.Load(),
		Lagged:    b.stats.lagged.Load(),
		Rooms:     n,
	}
}

func (b *Memory) shard(name string) *shard {
	return &b.shards[maphash.String(b.seed, name)%shardCount]
}

// lockRoom returns the live room called name locked for writing, creating it
// if create is set; nil if it does not exist and create is not set.
func (b *Memory) lockRoom(name string, create bool) *room {
	sh := b.shard(name)
	for {
		sh.mu.Lock()
		r := sh.rooms[name]
		if r == nil && create {
			r = newRoom(name, sh, b.maxSlots)
			sh.rooms[name] = r
		}
		sh.mu.Unlock()
		if r == nil {
			return nil
		}
		r.mu.Lock()
		if !r.dead {
			return r
		}
		r.mu.Unlock() // freed after we found it: look again
	}
}

// release frees r if nothing needs it any more.
func (b *Memory) release(r *room) {
	r.shard.mu.Lock()
	r.mu.Lock()
	if !r.dead && r.subs == 0 {
		r.dead = true
		delete(r.shard.rooms, r.name)
	}
	r.mu.Unlock()
	r.shard.mu.Unlock()
}

// Publish sequences msg into its room: it sets msg's offset and publish time,
// encodes it once and makes it visible to the room's subscribers, except the
// session called exclude when that is not empty. It returns the offset.
//
// A room exists while it has subscribers; a room without any holds nothing,
// so a message published to it reaches no one and is given offset 1. The
// caller must not touch msg after the call.
func (b *Memory) Publish(ctx context.Context, msg *roomcastv1.Message, exclude string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if b.closed.Load() {
		return 0, ErrClosed
	}
	b.stats.published.Add(1)
	r := b.lockRoom(msg.GetRoom(), false)
	if r == nil {
		return 1, nil
	}
	defer r.mu.Unlock()
	// Encoding under the room's lock is what makes offsets and encoded order
	// agree; it costs one encode per message, never one per subscriber.
	msg.Offset = r.head + 1
	msg.PublishTime = timestamppb.New(time.Now())
	buf, err := encodeEntry(msg)
	if err != nil {
		return 0, err
	}
	b.stats.encoded.Add(1)
	r.append(entry{offset: msg.Offset, buf: mem.SliceBuffer(buf), size: len(buf), exclude: exclude},
		b.cfg.backlogMessages, b.cfg.backlogBytes, b.maxSlots)
	r.wake()
	return msg.Offset, nil
}

// BacklogLimits returns how far a subscriber may fall behind in one room, in
// messages and bytes, before it is reported as lagging.
func (b *Memory) BacklogLimits() (messages, bytes int) {
	return b.cfg.backlogMessages, b.cfg.backlogBytes
}
