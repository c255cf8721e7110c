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

// Publish sequences msg into its room: it sets msg's offset and publish time,
// encodes it once and makes it visible to the room's subscribers, except the
// session called exclude when that is not empty. It returns the offset and
// the room's epoch.
//
// With history off, a room without subscribers holds nothing, so a message
// published to it reaches no one: it is given offset 1 and no epoch. The
// caller must not touch msg after the call.
func (b *Hub) Publish(ctx context.Context, msg *roomcastv1.Message, exclude string) (offset uint64, epoch string, err error) {
	if err := ctx.Err(); err != nil {
		return 0, "", err
	}
	if b.closed.Load() {
		return 0, "", ErrClosed
	}
	b.stats.published.Add(1)
	if b.engine != nil {
		return b.publishToEngine(ctx, msg, exclude)
	}
	by := b.owners.of(ctx)
	r, err := b.lockRoom(msg.GetRoom(), b.cfg.historyMessages > 0, by)
	if r == nil {
		return 1, "", err
	}
	defer r.mu.Unlock()
	// Encoding under the room's lock is what makes offsets and encoded order
	// agree; it costs one encode per message, never one per subscriber.
	now := time.Now()
	msg.Offset = r.msgs.head + 1
	msg.PublishTime = timestamppb.New(now)
	buf, err := wire.MessageEntry(msg)
	if err != nil {
		return 0, "", err
	}
	if b.retained.Load()+int64(len(buf)) > b.cfg.maxRetained {
		return 0, "", ErrOverBudget
	}
	if by != nil && by.bytes.Load()+int64(len(buf)) > b.cfg.bytesQuota {
		return 0, "", ErrBytesQuota
	}
	b.stats.encoded.Add(1)
	e := entry{buf: mem.SliceBuffer(buf), size: len(buf), time: now.UnixNano(), exclude: exclude, owner: by}
	var plain *roomcastv1.Message
	if b.cfg.encodeEach {
		plain = msg
	}
	r.msgs.append(e, plain, b.retention(r), b.cfg.backlogBytes, b.maxSlots)
	r.wake()
	return msg.Offset, r.epoch, nil
}

var epochEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newEpoch returns 64 random bits: a room that is freed and made again
// cannot get its old epoch back.
func newEpoch() string {
	var b [8]byte
	rand.Read(b[:]) // documented to always fill b
	return epochEncoding.EncodeToString(b[:])
}
