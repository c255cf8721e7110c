package broker

import (
	"errors"
	"slices"
	"strings"
	"time"
)

// This file is what an operator sees of the hub: read-only snapshots of its
// rooms, taken under each room's read lock for as long as the copy takes,
// and CloseRoom. Nothing here waits on the network.

// ErrRoomBusy is CloseRoom's error for a room whose first join on this node
// is still waiting on the engine: close it once the join is done.
var ErrRoomBusy = errors.New("broker: the room's first join is waiting on the engine")

// RoomInfo is a snapshot of one room as the hub holds it.
type RoomInfo struct {
	Name        string
	Subscribers int       // subscriptions, joins under way included
	Offset      uint64    // newest offset; 0 before the first message
	Epoch       string    // the room's epoch
	Retained    int       // messages retained
	Bytes       int       // bytes of those messages
	Members     int       // sessions in the room's presence; 0 with an engine, which keeps presence
	Rate        float64   // messages a second over the last RateWindow, estimated (see RateWindow)
	Newest      time.Time // when the newest retained message was published; zero if none is retained
}

// RateWindow is the span over which RoomInfo.Rate counts messages. The
// count comes from the times of the messages the room retains: when it
// retains fewer than it got in the window (its history and backlog bound
// it), the rate is taken over the time they span, at least 100 ms.
const RateWindow = 10 * time.Second

// minRateSpan keeps a rate taken over a very short span (a ring of one or
// two messages) from being absurd.
const minRateSpan = 100 * time.Millisecond

// Room returns a snapshot of the room called name, and false if the hub
// does not hold it.
func (b *Hub) Room(name string) (RoomInfo, bool) {
	r := b.readRoom(name)
	if r == nil {
		return RoomInfo{}, false
	}
	defer r.mu.RUnlock()
	return r.info(time.Now()), true
}

// Rooms returns snapshots of up to limit rooms whose names start with
// prefix and sort after after, in name order, and whether more follow. A
// page is consistent room by room, not as a whole: rooms made or freed
// while it is taken may or may not be in it. Each shard's lock is held
// while its names are copied, and each room's read lock while it is
// described.
func (b *Hub) Rooms(after, prefix string, limit int) (rooms []RoomInfo, more bool) {
	var names []string
	for i := range b.shards {
		sh := &b.shards[i]
		sh.mu.Lock()
		for name := range sh.rooms {
			if name > after && strings.HasPrefix(name, prefix) {
				names = append(names, name)
			}
		}
		sh.mu.Unlock()
	}
	slices.Sort(names)
	if len(names) > limit {
		names, more = names[:limit], true
	}
	now := time.Now()
	rooms = make([]RoomInfo, 0, len(names))
	for _, name := range names {
		if r := b.readRoom(name); r != nil {
			rooms = append(rooms, r.info(now))
			r.mu.RUnlock()
		}
	}
	return rooms, more
}

// RoomCount is how many rooms the hub holds.
func (b *Hub) RoomCount() int { return int(b.rooms.Load()) }

// info describes r at now. Caller holds r.mu.
func (r *room) info(now time.Time) RoomInfo {
	ri := RoomInfo{
		Name:        r.name,
		Subscribers: r.subs,
		Offset:      r.msgs.head,
		Epoch:       r.epoch,
		Retained:    r.msgs.retained(),
		Bytes:       r.msgs.bytes,
		Members:     len(r.members),
		Rate:        r.msgs.rate(now),
	}
	if ri.Retained > 0 {
		ri.Newest = time.Unix(0, r.msgs.at(r.msgs.head).time)
	}
	return ri
}

// rate estimates the messages a second appended over the RateWindow before
// now, from the times of the entries the ring retains. When every entry it
// retains falls in the window and older ones were dropped (the ring holds
// fewer than the window saw), the rate is taken over the span they cover.
// The caller synchronizes.
func (q *ring) rate(now time.Time) float64 {
	if q.retained() == 0 {
		return 0
	}
	since := now.Add(-RateWindow).UnixNano()
	lo, hi := q.first, q.head+1 // the first entry at or after since
	for lo < hi {
		mid := lo + (hi-lo)/2
		if q.at(mid).time < since {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	n := q.head + 1 - lo
	if n == 0 {
		return 0
	}
	span := RateWindow
	if lo == q.first && q.first > 1 {
		span = max(time.Duration(now.UnixNano()-q.at(q.first).time), minRateSpan)
	}
	return float64(n) / span.Seconds()
}

// CloseRoom closes the room called name: it drops what the room retains
// (messages, presence events and members, idempotency keys) and frees it,
// and the next Collect of every subscription to it reports a *GapError
// with Closed set, so that its subscriber leaves it. A join of it under way
// fails with ErrRoomClosed. A publish or join after CloseRoom makes a new
// room, in a new epoch. With an engine, only this node's room is closed:
// the engine keeps its history, and ErrRoomBusy reports a room whose first
// join is still waiting on the engine.
//
// It returns the subscriptions the room had and the messages it dropped,
// and false if the hub does not hold the room.
func (b *Hub) CloseRoom(name string) (subscribers, dropped int, ok bool, err error) {
	sh := b.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.rooms[name]
	if r == nil {
		return 0, 0, false, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.tracking; t != nil && t.started && !t.synced {
		return 0, 0, true, ErrRoomBusy
	}
	subscribers, dropped = r.subs, r.msgs.retained()
	r.closed = true
	r.gen++ // every subscription is cut off, as by a restart
	r.evGen++
	r.members = nil
	r.wake()
	r.releaseCatchUps(true)
	b.free(r)
	if b.engine != nil {
		b.engine.Untrack(name)
	}
	return subscribers, dropped, true, nil
}

// ErrRoomClosed is FinishJoin's error for a join of a room that CloseRoom
// closed meanwhile.
var ErrRoomClosed = errors.New("broker: the room was closed")

// EngineName says where the hub's rooms are sequenced and kept: "memory"
// without an engine, and with one, the name its Name method gives
// ("external" if it has none).
func (b *Hub) EngineName() string {
	if b.engine == nil {
		return "memory"
	}
	if n, ok := b.engine.(interface{ Name() string }); ok {
		return n.Name()
	}
	return "external"
}

// Limits are the limits a hub was made with (see the options of New).
type Limits struct {
	BacklogMessages  int
	BacklogBytes     int
	HistoryMessages  int
	HistoryTTL       time.Duration
	PresenceMembers  int
	MaxRooms         int
	MaxRetainedBytes int64
}

// Limits returns the hub's limits.
func (b *Hub) Limits() Limits {
	c := &b.cfg
	return Limits{
		BacklogMessages:  c.backlogMessages,
		BacklogBytes:     c.backlogBytes,
		HistoryMessages:  c.historyMessages,
		HistoryTTL:       c.historyTTL,
		PresenceMembers:  c.presenceMembers,
		MaxRooms:         c.maxRooms,
		MaxRetainedBytes: c.maxRetained,
	}
}
