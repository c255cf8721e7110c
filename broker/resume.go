package broker

import (
	"errors"
	"time"
)

// ErrFutureOffset is Join's error for a position past the room's newest
// offset in its current epoch: a client cannot have received it.
var ErrFutureOffset = errors.New("broker: position is past the room's newest offset")

// resume is the resume rule, in one place: where a join with position p
// starts reading r, and whether that is exactly after p (recovered).
//
// A join without a position, or with one from another epoch, starts after
// the newest message and is not recovered. One from the current epoch (an
// empty epoch means the current one) is recovered when every message after
// it is still held: within the history's size and age, and within the
// backlog, which also bounds what a subscriber may be behind. Otherwise it
// starts after the newest message: a subscriber is never given part of a
// gap. Caller holds r.mu.
func (b *Hub) resume(r *room, p *Position, now time.Time) (cursor uint64, recovered bool, err error) {
	head := r.msgs.head
	if p == nil || (p.Epoch != "" && p.Epoch != r.epoch) {
		return head, false, nil
	}
	switch {
	case p.Offset > head:
		return 0, false, ErrFutureOffset
	case p.Offset+1 < b.historyStart(r, now), head-p.Offset > uint64(b.cfg.backlogMessages):
		return head, false, nil
	}
	if _, bytes, lost := r.msgs.pending(p.Offset); lost || bytes > uint64(b.cfg.backlogBytes) {
		return head, false, nil
	}
	return p.Offset, true, nil
}
