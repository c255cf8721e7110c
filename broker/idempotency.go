package broker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Idempotency keys make a publish safe to retry: a publish that carries a
// key the same owner already used in the same room, within the window and
// while the room's epoch lives, appends nothing and returns the offset the
// first one got (see PublishOptions.IdempotencyKey).
//
// Each room remembers its keys beside its ring, oldest first, so that expiry
// and the per-room cap both drop from the front: the janitor prunes expired
// keys, a keyed publish prunes them too before it looks, and a room at its
// cap forgets its oldest key to remember a new one. A key's memory counts
// against the hub's retained-byte budget and its owner's byte quota, as a
// message's does, so keys cannot grow without bound either per room or in
// all. Keys live and die with their room: a room that is freed (and so
// would get a new epoch) forgets them.
//
// With an engine, the hub cannot keep the promise alone, since another node
// may sequence the retry: the engine keeps the keys (KeyedPublisher),
// stored beside the room with its epoch and checked and set in the same
// atomic step that sequences the message, so a retry sent to any node
// finds it (broker/redisengine: a hash and a sorted set by time next to the
// room's stream, set inside the publish script). With an engine that does
// not, PublishWith with a key fails with ErrKeysUnsupported. The engine's
// keys count toward its store's memory, not the hub's budgets.

// Defaults of WithIdempotency.
const (
	DefaultIdempotencyWindow = 5 * time.Minute
	DefaultIdempotencyKeys   = 10_000
)

// MaxIdempotencyKeyBytes bounds the length of an idempotency key.
const MaxIdempotencyKeyBytes = 128

// keyOverhead is what the hub counts for one remembered key beyond the
// bytes of the key and its owner's name: the map slot and the queue record.
const keyOverhead = 96

// WithIdempotency sets how long a room remembers a publish's idempotency
// key, and how many keys one room remembers at most (past that it forgets
// its oldest first). Both must be positive. The default is
// DefaultIdempotencyWindow (5 minutes) and DefaultIdempotencyKeys (10,000).
func WithIdempotency(window time.Duration, keysPerRoom int) Option {
	return func(c *config) { c.keyWindow, c.keysPerRoom = window, keysPerRoom }
}

// PublishOptions are the options of PublishWith.
type PublishOptions struct {
	// Exclude is a session id that must not receive the message; "" for
	// none.
	Exclude string

	// IdempotencyKey, when not empty, makes the publish a no-op that
	// returns the first one's offset and epoch if the same owner (see
	// WithOwner; callers without one share the empty owner) already
	// published with this key to the same room within the window of
	// WithIdempotency, and the room has lived since (its epoch is the
	// same). At most MaxIdempotencyKeyBytes.
	IdempotencyKey string

	// Owner, when not empty, names the tenant the publish is charged to,
	// as WithOwner does, which saves a caller that publishes once per
	// context making one; "" for the owner ctx names, if any.
	Owner string
}

// ownerIn is the owner of a publish with o and ctx: o.Owner, else the one
// ctx names.
func (o *PublishOptions) ownerIn(ctx context.Context) string {
	if o.Owner != "" {
		return o.Owner
	}
	return ownerName(ctx)
}

// scopedKey is a key as a room remembers it: a key belongs to its owner.
type scopedKey struct{ owner, key string }

// keyRecord is one remembered key, in the order they were remembered.
type keyRecord struct {
	key  scopedKey
	time int64  // when it was remembered, Unix nanoseconds
	size int    // what it counts against the budgets
	by   *owner // charged for it; nil for none
}

// keys is a room's remembered idempotency keys. Guarded by the room's lock.
type keys struct {
	offsets map[scopedKey]uint64 // nil until the first key
	queue   []keyRecord          // oldest first, from head
	head    int
	total   *atomic.Int64 // the hub's count of bytes retained
	count   *atomic.Int64 // the hub's count of keys
}

// len is how many keys are remembered.
func (k *keys) len() int { return len(k.offsets) }

// lookup returns the offset remembered for key.
func (k *keys) lookup(key scopedKey) (uint64, bool) {
	off, ok := k.offsets[key]
	return off, ok
}

// remember records key for offset at now, forgetting the oldest key first
// when max are already remembered.
func (k *keys) remember(key scopedKey, offset uint64, now int64, by *owner, max int) {
	if k.offsets == nil {
		k.offsets = make(map[scopedKey]uint64)
	}
	for k.len() >= max {
		k.forgetOldest()
	}
	size := keySize(key)
	k.offsets[key] = offset
	k.queue = append(k.queue, keyRecord{key: key, time: now, size: size, by: by})
	k.total.Add(int64(size))
	k.count.Add(1)
	if by != nil {
		by.bytes.Add(int64(size))
	}
}

// expire forgets the keys remembered before the time limit.
func (k *keys) expire(before int64) {
	for k.head < len(k.queue) && k.queue[k.head].time < before {
		k.forgetOldest()
	}
}

// clear forgets every key.
func (k *keys) clear() {
	for k.head < len(k.queue) {
		k.forgetOldest()
	}
}

func (k *keys) forgetOldest() {
	rec := &k.queue[k.head]
	delete(k.offsets, rec.key)
	k.total.Add(-int64(rec.size))
	k.count.Add(-1)
	if rec.by != nil {
		rec.by.bytes.Add(-int64(rec.size))
	}
	*rec = keyRecord{}
	k.head++
	switch {
	case k.head == len(k.queue):
		k.queue, k.head = k.queue[:0], 0
		if len(k.offsets) == 0 {
			k.offsets = nil // an idle room gives its map back
		}
	case k.head > 64 && k.head*2 > len(k.queue):
		n := copy(k.queue, k.queue[k.head:])
		clear(k.queue[n:])
		k.queue, k.head = k.queue[:n], 0
	}
}

// ownerName is the owner ctx names (see WithOwner), or "".
func ownerName(ctx context.Context) string {
	if c, ok := ctx.Value(ownerKey{}).(*ownerContext); ok {
		return c.owner
	}
	return ""
}

// keySize is what a remembered key counts against the byte budgets.
func keySize(key scopedKey) int { return len(key.owner) + len(key.key) + keyOverhead }

// ErrKeyTooLong is PublishWith's error for an idempotency key longer than
// MaxIdempotencyKeyBytes.
var ErrKeyTooLong = fmt.Errorf("broker: idempotency key longer than %d bytes", MaxIdempotencyKeyBytes)

// ErrKeysUnsupported is PublishWith's error for an idempotency key on a
// hub whose engine does not keep keys (is no KeyedPublisher).
var ErrKeysUnsupported = errors.New("broker: idempotency keys need the engine's support (a key stored beside the room and checked in the publish's atomic step), which this engine does not have")
