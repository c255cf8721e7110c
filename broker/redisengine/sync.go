package redisengine

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomcast/roomcast/broker"
)

// maxWaiting bounds the frames a room holds while it cannot deliver them
// (its position is being read, or a gap is being healed). Past it frames are
// dropped and fetched from the stream instead: they are stored before they
// are published.
const maxWaiting = 4096

// healBatch is how many entries one resync read fetches.
const healBatch = 1024

// track is a tracked room: what the Sink has been given of it, and the
// frames it cannot be given yet.
//
// The Sink is called only under mu, in offset order: every entry after
// head, in head's epoch, or else a visible break (a gap in offsets, a new
// epoch, or Reset). Nothing waits on the network under mu.
type track struct {
	s       *shard
	room    string
	channel string
	gone    atomic.Bool // untracked: no more syncs
	started atomic.Bool // ready was set (read without mu)

	// Guarded by s.mu.
	subGen uint64      // the session the room is subscribed on
	tracks int         // Track calls under way
	linger *time.Timer // running after Untrack

	mu       sync.Mutex
	ready    bool    // head and epoch are known: frames can be delivered
	epoch    string  // of the last entry given to the Sink
	head     uint64  // offset of the last entry given to the Sink
	waiting  []frame // received in channel order, not deliverable yet
	needSync bool    // the Sink may miss entries: read the stream after head
	syncing  bool    // a sync goroutine runs
}

// receive takes a frame of t's channel, on the PUB/SUB session's reader.
// It never blocks on the network: a frame that does not follow head waits,
// and a sync fetches what is missing.
func (t *track) receive(f frame) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ready && len(t.waiting) == 0 && f.epoch == t.epoch {
		switch {
		case f.offset <= t.head:
			return // a duplicate
		case f.offset == t.head+1:
			t.deliver(f.offset, f.epoch, f.time, f.exclude, []byte(f.body))
			return
		}
	}
	if len(t.waiting) >= maxWaiting {
		t.s.e.stats.dropped.Add(1)
		t.needSync = true
	} else {
		t.waiting = append(t.waiting, f)
	}
	if t.ready {
		t.wantSync()
	}
}

// deliver gives the Sink one entry, and moves head to it; not once t is
// untracked, so that a sync of t still under way cannot deliver beside a
// new track of the same room. Caller holds mu.
func (t *track) deliver(off uint64, epoch string, time int64, exclude string, body []byte) {
	if t.gone.Load() {
		return
	}
	if epoch != t.epoch || off != t.head+1 {
		t.s.e.stats.resets.Add(1)
	}
	t.epoch, t.head = epoch, off
	t.s.e.deliver(t.room, broker.Entry{Offset: off, Epoch: epoch, Time: time, Exclude: exclude, Body: body})
}

// wantSync makes sure a sync runs after now. Caller holds mu.
func (t *track) wantSync() {
	t.needSync = true
	if t.syncing || !t.ready || t.gone.Load() {
		return
	}
	t.syncing = t.s.e.spawn(t.sync)
}

// start makes t ready at snap, the room's position read after its channel
// was subscribed: from then on, every entry after snap.head comes as a
// frame (or is missed visibly, and then read). Frames that came meanwhile
// are delivered if they follow. Caller holds mu.
func (t *track) start(snap snapshot) {
	t.ready, t.epoch, t.head = true, snap.epoch, snap.head
	t.started.Store(true)
	t.drain()
	if t.needSync {
		t.wantSync()
	}
}

// drain delivers the waiting frames that follow head, drops those at or
// below it, and keeps the rest (after a gap) for a sync. A frame of another
// epoch is dropped too, and a sync asked for: the stream tells which epoch
// is current. Caller holds mu.
func (t *track) drain() {
	i := 0
	for ; i < len(t.waiting); i++ {
		f := t.waiting[i]
		switch {
		case f.epoch != t.epoch:
			t.needSync = true
		case f.offset <= t.head:
		case f.offset == t.head+1:
			t.deliver(f.offset, f.epoch, f.time, f.exclude, []byte(f.body))
		default:
			t.needSync = true
			n := copy(t.waiting, t.waiting[i:])
			clear(t.waiting[n:])
			t.waiting = t.waiting[:n]
			return
		}
	}
	clear(t.waiting)
	t.waiting = t.waiting[:0]
}

// sync reads the stream after head until the Sink has everything the room
// holds, on a goroutine of the engine's. While Redis cannot be reached it
// retries, backing off, until the room is untracked or the engine closed.
func (t *track) sync() {
	e := t.s.e
	backoff := 10 * time.Millisecond
	for {
		t.mu.Lock()
		if !t.needSync || t.gone.Load() || e.isClosed() {
			t.syncing = false
			t.mu.Unlock()
			return
		}
		t.needSync = false
		from, epoch, before := t.head, t.epoch, len(t.waiting)
		t.mu.Unlock()

		snap, err := t.fetch(from, epoch)
		if err != nil {
			t.mu.Lock()
			t.needSync = true
			t.mu.Unlock()
			select {
			case <-e.life.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		t.mu.Lock()
		t.apply(snap, before)
		t.mu.Unlock()
	}
}

// fetch reads the entries after from in epoch, or, when the room has
// another epoch now, its entries from the first.
func (t *track) fetch(from uint64, epoch string) (snapshot, error) {
	ctx, cancel := t.s.e.bound(context.Background())
	defer cancel()
	snap, err := t.s.read(ctx, t.room, query{create: true, after: from, limit: healBatch})
	if err == nil && snap.epoch != epoch && from > 0 {
		snap, err = t.s.read(ctx, t.room, query{create: true, after: 0, limit: healBatch})
	}
	return snap, err
}

// apply delivers what a sync read, then the waiting frames that now follow.
// The first before waiting frames came before the read began, so none of
// them can lie past the head it read; one that does was not made by the
// publish script, and is dropped rather than waited on forever. Caller
// holds mu.
func (t *track) apply(snap snapshot, before int) {
	e := t.s.e
	kept := t.waiting[:0]
	for i, f := range t.waiting {
		if i < before && f.epoch == snap.epoch && f.offset > snap.head {
			e.stats.badFrames.Add(1)
			continue
		}
		kept = append(kept, f)
	}
	clear(t.waiting[len(kept):])
	t.waiting = kept

	delivered := false
	for _, en := range snap.entries {
		if en.Epoch == t.epoch && en.Offset <= t.head {
			continue
		}
		t.deliver(en.Offset, en.Epoch, en.Time, en.Exclude, en.Body)
		e.stats.healed.Add(1)
		delivered = true
	}
	switch {
	case delivered || len(snap.entries) > 0: // the latter: all delivered meanwhile
		if snap.epoch == t.epoch && snap.head > t.head {
			t.needSync = true // more than one batch behind
		}
	case snap.epoch != t.epoch || snap.head > t.head:
		// The stream holds nothing after head, yet the room is past it
		// or in a new epoch: entries were lost (Redis restarted, or they
		// expired) and there is none to show it with. Say so, and go on
		// from the room's head.
		t.epoch, t.head = snap.epoch, snap.head
		if !t.gone.Load() {
			e.stats.resets.Add(1)
			e.reset(t.room, broker.Position{Offset: snap.head, Epoch: snap.epoch})
		}
	}
	t.drain()
}
