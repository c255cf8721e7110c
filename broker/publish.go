package broker

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/types/known/timestamppb"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/wire"
)

// Publish is PublishWith(ctx, msg, PublishOptions{Exclude: exclude}).
func (b *Hub) Publish(ctx context.Context, msg *roomcastv1.Message, exclude string) (offset uint64, epoch string, err error) {
	return b.PublishWith(ctx, msg, PublishOptions{Exclude: exclude})
}

// PublishWith sequences msg into its room: it sets msg's offset and publish
// time, encodes it once and makes it visible to the room's subscribers,
// except the session opts.Exclude when that is not empty. It returns the
// offset and the room's epoch. With opts.IdempotencyKey it may instead
// return those of an earlier publish and append nothing (see
// PublishOptions); with an engine, the engine keeps the key (see
// KeyedPublisher), or a key fails with ErrKeysUnsupported.
// It is safe for concurrent use; publishes to one room are sequenced in the
// order they take the room's lock.
//
// With history off, a room without subscribers holds nothing, so a message
// published to it reaches no one: it is given offset 1 and no epoch (and its
// key is not remembered). The caller must not touch msg after the call,
// nor the bytes of its payload, which a large message's entry keeps rather
// than copies (wire.MessageEntryParts). A PublishTime that msg holds is
// overwritten in place, not replaced: a caller may give the memory for it
// with the message's.
func (b *Hub) PublishWith(ctx context.Context, msg *roomcastv1.Message, opts PublishOptions) (offset uint64, epoch string, err error) {
	if err := ctx.Err(); err != nil {
		return 0, "", err
	}
	if b.closed.Load() {
		return 0, "", ErrClosed
	}
	if len(opts.IdempotencyKey) > MaxIdempotencyKeyBytes {
		return 0, "", ErrKeyTooLong
	}
	if b.engine != nil {
		if opts.IdempotencyKey != "" {
			return b.publishKeyedToEngine(ctx, msg, opts)
		}
		b.stats.published.Add(1)
		return b.publishToEngine(ctx, msg, opts.Exclude)
	}
	name := opts.ownerIn(ctx)
	by := b.owners.named(name)
	r, err := b.lockRoom(msg.GetRoom(), b.cfg.historyMessages > 0, by)
	if r == nil {
		b.stats.published.Add(1)
		return 1, "", err
	}
	defer r.mu.Unlock()
	now := time.Now()
	var key scopedKey
	if opts.IdempotencyKey != "" {
		key = scopedKey{owner: name, key: opts.IdempotencyKey}
		r.keys.expire(now.Add(-b.cfg.keyWindow).UnixNano())
		if off, ok := r.keys.lookup(key); ok {
			b.stats.deduplicated.Add(1)
			return off, r.epoch, nil
		}
	}
	b.stats.published.Add(1)
	// Encoding under the room's lock is what makes offsets and encoded order
	// agree; it costs one encode per message, never one per subscriber.
	msg.Offset = r.msgs.head + 1
	stamp(msg, now)
	buf, payload, err := wire.MessageEntryParts(msg)
	if err != nil {
		return 0, "", err
	}
	size := len(buf) + len(payload)
	need := int64(size)
	if opts.IdempotencyKey != "" {
		need += int64(keySize(key))
	}
	if b.retained.Load()+need > b.cfg.maxRetained {
		return 0, "", ErrOverBudget
	}
	if by != nil && by.bytes.Load()+need > b.cfg.bytesQuota {
		return 0, "", ErrBytesQuota
	}
	b.stats.encoded.Add(1)
	e := entry{buf: mem.SliceBuffer(buf), size: size, time: now.UnixNano(), exclude: opts.Exclude, owner: by}
	if payload != nil {
		e.payload = mem.SliceBuffer(payload)
	}
	var plain *roomcastv1.Message
	if b.cfg.encodeEach {
		plain = msg
	}
	r.msgs.append(e, plain, b.retention(r), b.cfg.backlogBytes, b.maxSlots)
	if opts.IdempotencyKey != "" {
		r.keys.remember(key, msg.Offset, now.UnixNano(), by, b.cfg.keysPerRoom)
	}
	r.wake()
	return msg.Offset, r.epoch, nil
}

// stamp sets msg's publish time to t, in the Timestamp msg holds if it
// holds one, which saves an allocation per publish.
func stamp(msg *roomcastv1.Message, t time.Time) {
	if msg.PublishTime == nil {
		msg.PublishTime = timestamppb.New(t)
		return
	}
	msg.PublishTime.Seconds, msg.PublishTime.Nanos = t.Unix(), int32(t.Nanosecond())
}

var epochEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newEpoch returns 64 random bits: a room that is freed and made again
// cannot get its old epoch back.
func newEpoch() string {
	var b [8]byte
	rand.Read(b[:]) // documented to always fill b
	return epochEncoding.EncodeToString(b[:])
}
