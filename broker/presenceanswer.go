package broker

import (
	"cmp"
	"context"
	"math"
	"slices"

	"google.golang.org/grpc/mem"

	"github.com/roomcast/roomcast/internal/wire"
)

// PresenceAnswer returns, as an encoded PresenceResponse, up to limit of
// the room's visible members, oldest joins first, and how many there are
// in all. It stops short of limit before the members take more than
// maxBytes encoded; maxBytes 0 means no such limit. The members' entries
// are encoded once, at their joins, and shared by every answer: the
// buffers are read-only.
func (b *Hub) PresenceAnswer(ctx context.Context, room string, limit, maxBytes int) (mem.BufferSlice, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.closed.Load() {
		return nil, ErrClosed
	}
	if b.engine != nil {
		return b.presenceFromEngine(ctx, room, limit, maxBytes)
	}
	all := b.visibleMembers(room)
	var bufs []mem.Buffer
	if n := fitEntries(len(all), limit, maxBytes, func(i int) int { return all[i].entry.Len() }); n > 0 {
		bufs = make([]mem.Buffer, 0, n+1) // and wire.Presence's trailer
		for _, m := range all[:n] {
			bufs = append(bufs, m.entry)
		}
	}
	return wire.Presence(bufs, total(len(all))), nil
}

// presenceFromEngine is PresenceAnswer with an engine, whose members are
// encoded here.
func (b *Hub) presenceFromEngine(ctx context.Context, room string, limit, maxBytes int) (mem.BufferSlice, error) {
	members, n, err := b.engine.Members(ctx, room, limit)
	if err != nil {
		return nil, err
	}
	bufs := make([]mem.Buffer, 0, min(len(members), limit)+1) // and wire.Presence's trailer
	size := 0
	for _, m := range members[:min(len(members), limit)] {
		e, err := wire.MemberEntry(m)
		if err != nil {
			return nil, err
		}
		if size += len(e); maxBytes > 0 && size > maxBytes {
			break // as fitEntries: the members that fit, no more encoded
		}
		bufs = append(bufs, mem.SliceBuffer(e))
	}
	return wire.Presence(bufs, total(n)), nil
}

// fitEntries is how many of n entries, the first limit at most, fit in
// maxBytes (0: no such limit), given the size of each.
func fitEntries(n, limit, maxBytes int, size func(i int) int) int {
	n = min(n, limit)
	if maxBytes <= 0 {
		return n
	}
	sum := 0
	for i := range n {
		if sum += size(i); sum > maxBytes {
			return i
		}
	}
	return n
}

// total is a count of members as PresenceResponse.total holds it.
func total(n int) uint32 { return uint32(min(n, math.MaxUint32)) }

// visibleMembers returns the room's visible members, oldest joins first.
func (b *Hub) visibleMembers(room string) []*member {
	r := b.readRoom(room)
	if r == nil {
		return nil
	}
	all := make([]*member, 0, len(r.members))
	for _, m := range r.members {
		all = append(all, m)
	}
	r.mu.RUnlock() // a member is immutable
	slices.SortFunc(all, func(a, b *member) int {
		if c := a.joined.Compare(b.joined); c != 0 {
			return c
		}
		return cmp.Compare(a.pb.SessionId, b.pb.SessionId) // only on a tie: cmp.Or would compare every pair's ids
	})
	return all
}
