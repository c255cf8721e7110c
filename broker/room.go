package broker

import (
	"sync"

	"google.golang.org/grpc/mem"
)

// entry is one sequenced message, encoded once and shared by every
// subscriber of its room.
type entry struct {
	offset  uint64
	buf     mem.Buffer // boxed once at publish, so batching allocates nothing per message
	size    int
	cum     uint64 // room.cum after this entry: backlog bytes are a subtraction
	exclude string // session id that must not receive it, or ""
}

// room is a ring of a room's newest encoded messages with the cursors of its
// subscribers pointing into it. Publishers append under mu; subscribers copy
// out what lies past their cursor under the read lock.
type room struct {
	name  string
	shard *shard

	mu      sync.RWMutex
	dead    bool    // removed from its shard: look the room up again
	ring    []entry // power-of-two length; grows on demand up to maxSlots
	first   uint64  // oldest retained offset; no entry is retained while first > head
	head    uint64  // newest offset, 0 before the first message
	bytes   int     // bytes retained
	cum     uint64  // bytes ever appended
	subs    int     // subscriptions
	waiters []*subscription
}

func newRoom(name string, sh *shard, slots int) *room {
	return &room{name: name, shard: sh, first: 1, ring: make([]entry, min(8, slots))}
}

func (r *room) at(offset uint64) *entry { return &r.ring[offset&uint64(len(r.ring)-1)] }

// retained is how many entries the ring holds. Caller holds mu.
func (r *room) retained() int { return int(r.head + 1 - r.first) }

// append adds e as the next offset, then evicts the oldest entries beyond
// the limits, always keeping the newest. Caller holds mu for writing.
func (r *room) append(e entry, maxMessages, maxBytes, maxSlots int) {
	if r.retained() == len(r.ring) {
		if len(r.ring) < maxSlots {
			r.grow()
		} else {
			r.evictOldest()
		}
	}
	r.cum += uint64(e.size)
	e.cum = r.cum
	r.head = e.offset
	*r.at(e.offset) = e
	r.bytes += e.size
	for r.first < r.head && (r.retained() > maxMessages || r.bytes > maxBytes) {
		r.evictOldest()
	}
}

func (r *room) evictOldest() {
	old := r.at(r.first)
	r.bytes -= old.size
	*old = entry{}
	r.first++
}

func (r *room) grow() {
	ring := make([]entry, 2*len(r.ring))
	for off := r.first; off <= r.head; off++ {
		ring[off&uint64(len(ring)-1)] = *r.at(off)
	}
	r.ring = ring
}

// pending is what lies after cursor: messages and bytes, or lost when some of
// it was already evicted. Caller holds mu.
func (r *room) pending(cursor uint64) (messages, bytes uint64, lost bool) {
	switch {
	case cursor >= r.head:
		return 0, 0, false
	case cursor+1 < r.first:
		return r.head - cursor, 0, true
	}
	var before uint64 // r.cum when cursor was the head
	if cursor >= r.first {
		before = r.at(cursor).cum
	} else {
		e := r.at(r.first)
		before = e.cum - uint64(e.size)
	}
	return r.head - cursor, r.cum - before, false
}

// wake notifies every parked subscriber. Caller holds mu for writing.
func (r *room) wake() {
	for i, s := range r.waiters {
		s.waiting = false
		s.sub.notify()
		r.waiters[i] = nil
	}
	r.waiters = r.waiters[:0]
}

// unpark removes s from the waiters. Caller holds mu for writing.
func (r *room) unpark(s *subscription) {
	if !s.waiting {
		return
	}
	s.waiting = false
	for i, w := range r.waiters {
		if w == s {
			last := len(r.waiters) - 1
			r.waiters[i] = r.waiters[last]
			r.waiters[last] = nil
			r.waiters = r.waiters[:last]
			return
		}
	}
}
