package broker

import (
	"sync"
	"sync/atomic"
	"time"
)

// room is a room's two rings, messages and presence events, with its
// subscribers' cursors pointing into them. Publishers append under mu;
// subscribers copy out what lies past their cursors under the read lock, and
// park under wmu.
type room struct {
	name  string
	shard *shard
	epoch string

	mu        sync.RWMutex
	dead      bool // removed from its shard: look the room up again
	msgs      ring // seq is the offset
	events    ring
	subs      int // subscriptions
	listeners int // subscriptions that asked for presence events
	members   map[string]*member

	// Parking and waking do not take mu: with a thousand subscribers each
	// parking after every message, the room's write lock would be the
	// bottleneck. A publisher stores the new head before it takes wmu to
	// wake; a subscriber loads the head after it takes wmu to park; so one
	// of them always sees the other.
	msgHead atomic.Uint64 // msgs.head
	evHead  atomic.Uint64 // events.head
	wmu     sync.Mutex
	waiters []*subscription // guarded by wmu
}

type member struct {
	info   map[string]string
	joined time.Time
}

func newRoom(name string, sh *shard, slots int) *room {
	return &room{name: name, shard: sh, epoch: newEpoch(), msgs: newRing(slots), events: newRing(slots)}
}

// wake notifies every parked subscriber.
func (r *room) wake() {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	for i, s := range r.waiters {
		s.waiting = false
		s.sub.notify()
		r.waiters[i] = nil
	}
	r.waiters = r.waiters[:0]
}

// wakeListeners notifies the parked subscribers that asked for presence
// events, and leaves the others parked.
func (r *room) wakeListeners() {
	r.wmu.Lock()
	defer r.wmu.Unlock()
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

// unpark removes s from the waiters.
func (r *room) unpark(s *subscription) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
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
