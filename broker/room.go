package broker

import (
	"sync"
	"sync/atomic"
)

// room is a room's two rings, messages and presence events, with its
// subscribers' cursors pointing into them. Publishers append under mu;
// subscribers copy out what lies past their cursors under the read lock.
type room struct {
	name     string
	shard    *shard
	epoch    string
	owner    *owner    // charged for the room while it lives; nil for none
	catchUps []catchUp // with an engine: joins waiting for the ring to reach an offset
	tracking *tracking // with an engine: the room's sync with it; nil without
	gen      uint64    // restarts of the sequence (see restart); a subscription of an older one is cut off
	eventSeq uint64    // with an engine: the last presence event's sequence number
	evGen    uint64    // breaks in the event sequence; a listener of an older one is cut off

	mu        sync.RWMutex
	dead      bool // removed from its shard: look the room up again
	closed    bool // dead by CloseRoom: its subscriptions learn so from their GapError
	msgs      ring // seq is the offset
	keys      keys // idempotency keys of recent publishes (idempotency.go)
	events    ring
	subs      int // subscriptions
	listeners int // subscriptions that asked for presence events
	members   map[string]*member
	waiters   []*subscription
}

func newRoom(name string, sh *shard, retained *atomic.Int64) *room {
	return &room{name: name, shard: sh, epoch: newEpoch(), msgs: newRing(retained), events: newRing(retained), keys: keys{total: retained}}
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

// wakeListeners notifies the parked subscribers that asked for presence
// events, and leaves the others parked. Caller holds mu for writing.
func (r *room) wakeListeners() {
	kept := r.waiters[:0]
	for _, s := range r.waiters {
		if s.events {
			s.waiting = false
			s.sub.notify()
		} else {
			kept = append(kept, s)
		}
	}
	clear(r.waiters[len(kept):])
	r.waiters = kept
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
