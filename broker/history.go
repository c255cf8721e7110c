package broker

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/types/known/timestamppb"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Errors from Join.
var (
	ErrFutureOffset = errors.New("broker: position is past the room's newest offset")
	ErrPresenceFull = errors.New("broker: room presence is full")
)

// historyStart is the oldest offset r serves as history at time now.
// Caller holds r.mu.
func (b *Hub) historyStart(r *room, now time.Time) uint64 {
	if b.cfg.historyMessages == 0 {
		return r.msgs.head + 1
	}
	start := r.msgs.first
	if r.msgs.head >= uint64(b.cfg.historyMessages) {
		start = max(start, r.msgs.head-uint64(b.cfg.historyMessages)+1)
	}
	before := now.Add(-b.cfg.historyTTL).UnixNano()
	for start <= r.msgs.head && r.msgs.at(start).time < before {
		start++
	}
	return start
}

// History returns, as an encoded HistoryResponse, the room's retained
// messages with offsets after after: the oldest limit of them, or with
// newestFirst the newest limit, newest first. The buffers are shared and
// read-only.
func (b *Hub) History(ctx context.Context, room string, after uint64, limit int, newestFirst bool) (mem.BufferSlice, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.closed.Load() {
		return nil, ErrClosed
	}
	r := b.readRoom(room)
	if r == nil {
		return historyFrame(nil, 0, ""), nil
	}
	defer r.mu.RUnlock()
	var bufs []mem.Buffer
	if from, to, ok := historyRange(b.historyStart(r, time.Now()), r.msgs.head, after, limit, newestFirst); ok {
		bufs = make([]mem.Buffer, 0, to-from+1)
		for off := from; off <= to; off++ {
			bufs = append(bufs, r.msgs.at(off).buf)
		}
	}
	if newestFirst {
		slices.Reverse(bufs)
	}
	return historyFrame(bufs, r.msgs.head, r.epoch), nil
}

// historyRange is the offsets [from, to] that a History call serves out of
// the retained range [start, head]: those after after, at most limit of
// them, the oldest or with newestFirst the newest. ok is false when there
// are none. after is the client's, so any value must work: after+1 would
// wrap at 2^64-1.
func historyRange(start, head, after uint64, limit int, newestFirst bool) (from, to uint64, ok bool) {
	if after >= head || start > head || limit < 1 {
		return 0, 0, false
	}
	from, to = max(start, after+1), head
	if n := uint64(limit); to-from+1 > n {
		if newestFirst {
			from = to - n + 1
		} else {
			to = from + n - 1
		}
	}
	return from, to, true
}

// Presence returns up to limit of the room's visible members, oldest joins
// first, and how many there are in all.
func (b *Hub) Presence(ctx context.Context, room string, limit int) ([]*roomcastv1.Member, int, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if b.closed.Load() {
		return nil, 0, ErrClosed
	}
	r := b.readRoom(room)
	if r == nil {
		return nil, 0, nil
	}
	type visible struct {
		id string
		m  *member
	}
	all := make([]visible, 0, len(r.members))
	for id, m := range r.members {
		all = append(all, visible{id, m})
	}
	r.mu.RUnlock()
	slices.SortFunc(all, func(a, b visible) int {
		return cmp.Or(a.m.joined.Compare(b.m.joined), cmp.Compare(a.id, b.id))
	})
	out := make([]*roomcastv1.Member, 0, min(limit, len(all)))
	for _, v := range all[:min(limit, len(all))] {
		out = append(out, v.m.proto(v.id))
	}
	return out, len(all), nil
}

func (m *member) proto(id string) *roomcastv1.Member {
	return &roomcastv1.Member{SessionId: id, Info: m.info, JoinTime: timestamppb.New(m.joined)}
}

// announce appends a presence event for session id to r's event ring.
// Caller holds r.mu for writing.
func (b *Hub) announce(r *room, kind roomcastv1.PresenceEventKind, id string, m *member) {
	if r.listeners == 0 {
		return
	}
	ev := &roomcastv1.PresenceEvent{Room: r.name, Kind: kind, Member: m.proto(id), Offset: r.msgs.head}
	buf, err := encodeEntry(presenceField, ev)
	if err != nil {
		return // cannot happen: the event is built from validated fields
	}
	r.events.append(entry{buf: mem.SliceBuffer(buf), size: len(buf), time: time.Now().UnixNano()},
		b.cfg.backlogMessages, b.cfg.backlogBytes, b.maxSlots)
	r.wakeListeners()
}
