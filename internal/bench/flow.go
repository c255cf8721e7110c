package bench

import (
	"context"
	"sync"
	"sync/atomic"
)

// room is one room's publishers' and subscribers' shared state: how much was
// published, and how far its slowest subscriber got, for flow control.
//
// A subscriber's progress (ack) is the number of the room's messages it has
// accounted for. Progress is tracked in levels of chunk messages: reached
// counts, per level, the subscribers that got that far, and minLevel is the
// highest level every subscriber reached. Publishers may run window messages
// ahead of minLevel*chunk. This costs a subscriber one atomic add per chunk
// messages, whatever the room's size. reached is a ring of levels: a
// subscriber can be at most window/chunk+1 levels ahead of minLevel, so a
// slot is reset (by the subscriber that completes its level) before it is
// reused.
type room struct {
	index     int
	name      string
	subs      []*subscriber
	chunk     uint64
	window    uint64
	published atomic.Uint64 // messages reserved by publishers: each is published
	minLevel  atomic.Uint64
	reached   []atomic.Int64

	mu      sync.Mutex
	waiting atomic.Bool   // a publisher waits on changed
	changed chan struct{} // closed and replaced when minLevel moves while waiting
}

func newRoom(index int, name string, window int) *room {
	chunk := uint64(max(1, window/4))
	return &room{
		index:   index,
		name:    name,
		chunk:   chunk,
		window:  uint64(window),
		reached: make([]atomic.Int64, uint64(window)/chunk+2),
		changed: make(chan struct{}),
	}
}

// reserve waits until the room may take one more message and counts it as
// published. It fails only if ctx is done first, and then reserves nothing:
// a reserved message must be published.
func (r *room) reserve(ctx context.Context) error {
	for {
		p := r.published.Load()
		if p < r.minLevel.Load()*r.chunk+r.window {
			if r.published.CompareAndSwap(p, p+1) {
				return nil
			}
			continue
		}
		r.mu.Lock()
		ch := r.changed
		r.waiting.Store(true)
		r.mu.Unlock()
		// minLevel is read after waiting is set and a subscriber sets
		// minLevel before it reads waiting: one of the two sees the other.
		if p < r.minLevel.Load()*r.chunk+r.window {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// advance records that sub went from ack old to ack now.
func (r *room) advance(old, now uint64) {
	for l := old/r.chunk + 1; l <= now/r.chunk; l++ {
		slot := &r.reached[l%uint64(len(r.reached))]
		if slot.Add(1) != int64(len(r.subs)) {
			continue
		}
		slot.Store(0)
		r.minLevel.Store(l)
		if r.waiting.Load() {
			r.mu.Lock()
			if r.waiting.Load() {
				r.waiting.Store(false)
				close(r.changed)
				r.changed = make(chan struct{})
			}
			r.mu.Unlock()
		}
	}
}
