package broker

import (
	"sync/atomic"

	"google.golang.org/grpc/mem"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// entry is one encoded item of a room, shared by every subscriber.
type entry struct {
	seq     uint64
	buf     mem.Buffer // boxed once at publish, so batching allocates nothing per item
	payload mem.Buffer // a large message's payload, shared with its request, after buf; nil when buf is all of it (wire.MessageEntryParts)
	size    int        // of buf and payload
	cum     uint64     // ring.cum after this entry: backlog bytes are a subtraction
	time    int64      // when it was appended, in Unix nanoseconds
	exclude string     // session id that must not receive it, or ""
	owner   *owner     // charged for its bytes while it is retained; nil for none
}

// appendTo appends e's buffers to bufs.
func (e *entry) appendTo(bufs []mem.Buffer) []mem.Buffer {
	if e.payload != nil {
		return append(bufs, e.buf, e.payload)
	}
	return append(bufs, e.buf)
}

// buffers is how many buffers appendTo appends.
func (e *entry) buffers() int {
	if e.payload != nil {
		return 2
	}
	return 1
}

// ring holds a sequence's newest entries. For messages the sequence number
// is the room offset. The caller synchronizes.
type ring struct {
	entries []entry       // empty until the first entry, then a power-of-two length growing on demand up to maxSlots; at needs retained() > 0
	first   uint64        // oldest retained; nothing is retained while first > head
	head    uint64        // newest, 0 before the first
	bytes   int           // bytes retained
	cum     uint64        // bytes ever appended
	total   *atomic.Int64 // the hub's count of bytes retained by every ring

	// plain holds each entry's message unencoded, beside entries, only for
	// WithEncodePerSubscriber: nil otherwise, so that mode costs the
	// production path no more than a nil check per append.
	plain []*roomcastv1.Message
}

// newRing returns an empty ring that counts its bytes in total too. It
// holds no slots until its first entry: a room that is joined and left
// without a message (a client cycling through rooms, attack (e) of issue
// #13) then costs no ring, where two rings of firstSlots were most of what
// making a room allocated.
func newRing(total *atomic.Int64) ring {
	return ring{first: 1, total: total}
}

// firstSlots is how many slots a ring takes at its first entry.
const firstSlots = 8

// keepPlain makes the ring keep each entry's unencoded message too: plain
// is non-nil from now on, if empty until the ring's first slots.
func (r *ring) keepPlain() { r.plain = make([]*roomcastv1.Message, len(r.entries)) }

// plainAt is the unencoded message of seq; keepPlain must have been called.
func (r *ring) plainAt(seq uint64) *roomcastv1.Message { return r.plain[seq&uint64(len(r.plain)-1)] }

func (r *ring) at(seq uint64) *entry { return &r.entries[seq&uint64(len(r.entries)-1)] }

// retained is how many entries the ring holds.
func (r *ring) retained() int { return int(r.head + 1 - r.first) }

// append adds e as the next sequence number, then evicts the oldest entries
// beyond the limits, always keeping the newest. plain is e's unencoded
// message for a ring that keeps them, and nil for the others.
func (r *ring) append(e entry, plain *roomcastv1.Message, maxEntries, maxBytes, maxSlots int) {
	if r.retained() == len(r.entries) {
		if len(r.entries) < maxSlots {
			r.grow(maxSlots)
		} else {
			r.evictOldest()
		}
	}
	r.cum += uint64(e.size)
	e.cum = r.cum
	r.head++
	e.seq = r.head
	*r.at(e.seq) = e
	if r.plain != nil {
		r.plain[e.seq&uint64(len(r.plain)-1)] = plain
	}
	r.bytes += e.size
	r.total.Add(int64(e.size))
	if e.owner != nil {
		e.owner.bytes.Add(int64(e.size))
	}
	r.trim(maxEntries, maxBytes)
}

// trim evicts the oldest entries beyond the limits, keeping the newest.
func (r *ring) trim(maxEntries, maxBytes int) {
	for r.retained() > maxEntries || (r.bytes > maxBytes && r.retained() > 1) {
		r.evictOldest()
	}
}

// clear evicts every entry.
func (r *ring) clear() {
	for r.retained() > 0 {
		r.evictOldest()
	}
}

// expire evicts entries appended before the time limit.
func (r *ring) expire(before int64) {
	for r.first <= r.head && r.at(r.first).time < before {
		r.evictOldest()
	}
}

func (r *ring) evictOldest() {
	old := r.at(r.first)
	r.bytes -= old.size
	r.total.Add(-int64(old.size))
	if old.owner != nil {
		old.owner.bytes.Add(-int64(old.size))
	}
	*old = entry{}
	if r.plain != nil {
		r.plain[r.first&uint64(len(r.plain)-1)] = nil
	}
	r.first++
}

// grow doubles the ring's slots, or gives an empty one its first.
func (r *ring) grow(maxSlots int) {
	n := 2 * len(r.entries)
	if n == 0 {
		n = min(firstSlots, maxSlots)
	}
	entries := make([]entry, n)
	var plain []*roomcastv1.Message
	if r.plain != nil {
		plain = make([]*roomcastv1.Message, len(entries))
	}
	for seq := r.first; seq <= r.head; seq++ {
		entries[seq&uint64(len(entries)-1)] = *r.at(seq)
		if plain != nil {
			plain[seq&uint64(len(plain)-1)] = r.plainAt(seq)
		}
	}
	r.entries, r.plain = entries, plain
}

// pending is what lies after cursor: entries and bytes, or lost when some of
// it was already evicted.
func (r *ring) pending(cursor uint64) (entries, bytes uint64, lost bool) {
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

// prepend adds e as the sequence number before the oldest, for a ring being
// filled back from elsewhere, and reports false, adding nothing, when the
// ring is at maxSlots entries or e would take it past maxBytes. Offsets and
// byte counts stay what append would have made them: e.cum is counted back
// from the entry after it (modulo 2^64, as every difference of cum is).
func (r *ring) prepend(e entry, maxBytes, maxSlots int) bool {
	if r.first <= 1 || r.bytes+e.size > maxBytes {
		return false
	}
	if r.retained() == len(r.entries) {
		if len(r.entries) >= maxSlots {
			return false
		}
		r.grow(maxSlots)
	}
	if r.retained() == 0 {
		e.cum = r.cum
	} else {
		next := r.at(r.first)
		e.cum = next.cum - uint64(next.size)
	}
	r.first--
	e.seq = r.first
	*r.at(e.seq) = e
	r.bytes += e.size
	r.total.Add(int64(e.size))
	if e.owner != nil {
		e.owner.bytes.Add(int64(e.size))
	}
	return true
}
