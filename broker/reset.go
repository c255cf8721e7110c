package broker

// Reset implements Sink: when the room is held here and not already at
// head, its ring restarts after head, in head's epoch, and every
// subscription made before gets a *GapError from its next Collect.
func (b *Hub) Reset(room string, head Position) {
	r, _ := b.lockRoom(room, false, nil)
	if r == nil {
		return
	}
	defer r.mu.Unlock()
	if t := r.tracking; t != nil && !t.synced {
		t.buffer(early{reset: true, head: head}) // applied in order once Track returns
		return
	}
	b.resetLocked(r, head)
}

// resetLocked is Reset for a room in sync. Caller holds r.mu for writing.
func (b *Hub) resetLocked(r *room, head Position) {
	if r.epoch == head.Epoch && r.msgs.head == head.Offset {
		return
	}
	r.restart(head.Epoch, head.Offset+1)
}
