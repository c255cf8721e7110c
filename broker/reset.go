package broker

// Reset implements Sink: when the room is held here and not already at
// head, its ring restarts after head, in head's epoch, and every
// subscription made before gets a *GapError from its next Collect.
func (b *Hub) Reset(room string, head Position) {
	r, _ := b.lockRoom(room, false)
	if r == nil {
		return
	}
	defer r.mu.Unlock()
	if r.epoch == head.Epoch && r.msgs.head == head.Offset {
		return
	}
	r.restart(head.Epoch, head.Offset+1)
}
