package broker

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/wire"
)

// ErrPresenceFull is Join's error when the room lists as many members as
// WithPresenceLimit allows.
var ErrPresenceFull = errors.New("broker: room presence is full")

// Presence is kept per room: the visible members (sessions that joined with
// presence), and a ring of join and leave events encoded once for the
// subscribers that asked for them. An event carries the room's newest
// offset when it happened, so a client can place it among the messages.

// member is one visible session of a room, with the Member it is listed
// as and that Member's entry of a PresenceResponse, both made once at its
// join: Presence answers with them as they are, rather than building and
// encoding a Member for each member of each call (a room of 500 members
// listed 500 Members and Timestamps per call, half the allocations of a
// Presence call, and encoding them was most of the rest of its time).
type member struct {
	joined time.Time
	pb     *roomcastv1.Member // read-only
	entry  mem.Buffer         // pb as an element of PresenceResponse.members (wire.MemberEntry), boxed once; read-only
}

// addMember lists session id in r's presence, announcing the join.
// Caller holds r.mu for writing.
func (b *Hub) addMember(r *room, id string, info map[string]string) error {
	if len(r.members) >= b.cfg.presenceMembers {
		return ErrPresenceFull
	}
	if r.members == nil {
		r.members = make(map[string]*member)
	}
	now := time.Now()
	m := &member{joined: now, pb: &roomcastv1.Member{SessionId: id, Info: info, JoinTime: timestamppb.New(now)}}
	entry, err := wire.MemberEntry(m.pb)
	if err != nil {
		return err // cannot happen: its info was decoded from a request, as valid UTF-8
	}
	m.entry = mem.SliceBuffer(entry)
	r.members[id] = m
	b.announce(r, roomcastv1.PresenceEventKind_PRESENCE_EVENT_KIND_JOIN, m)
	return nil
}

// removeMember takes session id off r's presence, announcing the leave.
// Caller holds r.mu for writing.
func (b *Hub) removeMember(r *room, id string) {
	if m := r.members[id]; m != nil {
		delete(r.members, id)
		b.announce(r, roomcastv1.PresenceEventKind_PRESENCE_EVENT_KIND_LEAVE, m)
	}
}

// Presence returns up to limit of the room's visible members, oldest joins
// first, and how many there are in all. Each Member is the caller's own.
func (b *Hub) Presence(ctx context.Context, room string, limit int) ([]*roomcastv1.Member, int, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if b.closed.Load() {
		return nil, 0, ErrClosed
	}
	if b.engine != nil {
		return b.engine.Members(ctx, room, limit)
	}
	all := b.visibleMembers(room)
	out := make([]*roomcastv1.Member, 0, min(limit, len(all)))
	for _, m := range all[:min(limit, len(all))] {
		out = append(out, proto.Clone(m.pb).(*roomcastv1.Member)) // m.pb is shared by every answer
	}
	return out, len(all), nil
}

// announce appends a presence event for member m to r's event ring.
// Caller holds r.mu for writing.
func (b *Hub) announce(r *room, kind roomcastv1.PresenceEventKind, m *member) {
	if r.listeners == 0 {
		return
	}
	buf := wire.PresenceEntryFrom(r.name, kind, wire.Member(m.entry.ReadOnlyData()), r.msgs.head)
	r.events.append(entry{buf: mem.SliceBuffer(buf), size: len(buf), time: time.Now().UnixNano()}, nil,
		b.cfg.backlogMessages, b.cfg.backlogBytes, b.maxSlots)
	r.wakeListeners()
}

// DeliverEvent implements Sink: it appends a presence event sequenced
// elsewhere to its room's event ring, when this node has listeners of the
// room, built from the engine's bytes without an encode. A break in the
// room's event sequence cuts the listeners off.
func (b *Hub) DeliverEvent(room string, ev Event) {
	r, _ := b.lockRoom(room, false, nil)
	if r == nil {
		return
	}
	defer r.mu.Unlock()
	switch {
	case ev.Seq == 0:
		return
	case ev.Seq != 1 && r.eventSeq != 0 && ev.Seq <= r.eventSeq:
		return // again
	case ev.Seq != 1 && r.eventSeq != 0 && ev.Seq != r.eventSeq+1:
		r.evGen++ // lost some: cut the listeners
	}
	r.eventSeq = ev.Seq
	if r.listeners == 0 {
		return
	}
	kind := roomcastv1.PresenceEventKind_PRESENCE_EVENT_KIND_JOIN
	if ev.Leave {
		kind = roomcastv1.PresenceEventKind_PRESENCE_EVENT_KIND_LEAVE
	}
	buf := wire.PresenceEntryFrom(room, kind, ev.Member, ev.Offset)
	r.events.append(entry{buf: mem.SliceBuffer(buf), size: len(buf), time: time.Now().UnixNano()}, nil,
		b.cfg.backlogMessages, b.cfg.backlogBytes, b.maxSlots)
	r.wakeListeners()
}
