package broker

import "fmt"

// GapError reports a subscriber of a room whose sequence broke on this node:
// messages were sequenced that the node will never hold (its engine lost
// them), or the room got a new epoch. Like a LagError its message names the
// last offset sent per room, from which the client rejoins; the rejoin then
// says recovered false.
type GapError struct {
	Room string            // the room whose sequence broke
	Sent map[string]uint64 // last offset committed as sent, per room
}

func (e *GapError) Error() string {
	return fmt.Sprintf("room %q lost messages on this node; rejoin it: %s", e.Room, FormatSent(e.Sent))
}

// Deliver implements Sink: it appends an entry sequenced elsewhere to its
// room, if this node holds the room, and wakes the room's parked
// subscribers. The entry's bytes are built once, by appending the offset to
// the body, and shared by every subscriber as a local publish's are.
//
// A duplicate (an offset already held) is dropped. A gap in offsets or a new
// epoch restarts the room's ring at the entry, and every subscription made
// before it gets a *GapError from its next Collect.
func (b *Hub) Deliver(room string, e Entry) {
	r, _ := b.lockRoom(room, false, nil)
	if r == nil {
		return // no local subscriber: nothing to keep
	}
	defer r.mu.Unlock()
	if t := r.tracking; t != nil && !t.synced {
		t.buffer(early{entry: e})
		return
	}
	b.deliverLocked(r, e)
}

// restart empties r's message ring so that its next offset is next, in
// epoch, and cuts off every subscription made before. Caller holds r.mu for
// writing.
func (r *room) restart(epoch string, next uint64) {
	r.gen++
	r.epoch = epoch
	r.msgs.clear()
	r.msgs.first, r.msgs.head = next, next-1
	r.wake()
	r.releaseCatchUps(true)
}
