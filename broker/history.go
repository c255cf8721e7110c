package broker

import (
	"context"
	"time"

	"google.golang.org/grpc/mem"

	"github.com/roomcast/roomcast/internal/wire"
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
// newestFirst the newest limit, newest first. It stops short of limit
// before the messages take more than maxBytes encoded, but returns at
// least one; maxBytes 0 means no such limit. The buffers are shared and
// read-only.
func (b *Hub) History(ctx context.Context, room string, after uint64, limit, maxBytes int, newestFirst bool) (mem.BufferSlice, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.closed.Load() {
		return nil, ErrClosed
	}
	if b.engine != nil {
		return b.historyFromEngine(ctx, room, after, limit, maxBytes, newestFirst)
	}
	r := b.readRoom(room)
	if r == nil {
		return wire.History(nil, 0, ""), nil
	}
	defer r.mu.RUnlock()
	var bufs []mem.Buffer
	if from, to, ok := historyRange(b.historyStart(r, time.Now()), r.msgs.head, after, limit, newestFirst); ok {
		off, step := from, uint64(1)
		if newestFirst {
			off, step = to, ^uint64(0) // to, then down to from (at least 1, so no wrap)
		}
		// Counted first, so that the answer's one slice is made to size,
		// with room for wire.History's trailer: a page cut short by
		// maxBytes, 260 of a thousand messages say, otherwise held a
		// thousand's slice, then a copy.
		n, end := 0, off
		for size := 0; end >= from && end <= to; end += step {
			e := r.msgs.at(end)
			if size += e.size; maxBytes > 0 && size > maxBytes && n > 0 {
				break
			}
			n += e.buffers()
		}
		bufs = make([]mem.Buffer, 0, n+1)
		for ; off != end; off += step {
			bufs = r.msgs.at(off).appendTo(bufs)
		}
	}
	return wire.History(bufs, r.msgs.head, r.epoch), nil
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
