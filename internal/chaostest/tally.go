// Package chaostest checks what subscribers of a roomcast cluster receive
// while faults are injected: a Ledger records every publish the cluster
// acknowledged, and a Tally per subscriber follows the events its
// Subscription delivers, counting messages delivered, duplicated,
// reordered, skipped without a signal (silent gaps) and skipped with one
// (signalled gaps, the client's Gap events).
//
// The chaos test of this package (chaos_test.go) runs real nodes on real
// Redis shards with the Go client behind fault proxies; the counting is
// kept here, apart, so that its own tests can show it catches each fault.
package chaostest

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Pos is a message's place in a room: its epoch and offset.
type Pos struct {
	Epoch  string
	Offset uint64
}

// String formats p as offset@epoch.
func (p Pos) String() string { return fmt.Sprintf("%d@%s", p.Offset, p.Epoch) }

// Counts is what one subscriber saw, over all its rooms.
type Counts struct {
	Delivered  int // messages delivered, duplicates included
	Duplicated int // a position, or a publish's payload, delivered again
	Reordered  int // an offset below the last of its epoch, or an epoch left behind
	Silent     int // positions skipped with no Gap event: a jump, or a new epoch
	Signalled  int // Gap events
	Reconnects int // Reconnected events
}

// Add returns the sum of c and d.
func (c Counts) Add(d Counts) Counts {
	return Counts{
		Delivered: c.Delivered + d.Delivered, Duplicated: c.Duplicated + d.Duplicated,
		Reordered: c.Reordered + d.Reordered, Silent: c.Silent + d.Silent,
		Signalled: c.Signalled + d.Signalled, Reconnects: c.Reconnects + d.Reconnects,
	}
}

// Sub returns c minus d: what happened between two snapshots.
func (c Counts) Sub(d Counts) Counts {
	return Counts{
		Delivered: c.Delivered - d.Delivered, Duplicated: c.Duplicated - d.Duplicated,
		Reordered: c.Reordered - d.Reordered, Silent: c.Silent - d.Silent,
		Signalled: c.Signalled - d.Signalled, Reconnects: c.Reconnects - d.Reconnects,
	}
}

// Ledger records the publishes a cluster acknowledged: per room, each
// position with its payload. It is safe for concurrent use.
type Ledger struct {
	mu    sync.Mutex
	rooms map[string]map[Pos]string
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{rooms: make(map[string]map[Pos]string)} }

// Acked records that the publish of payload to room was acknowledged at p.
// It returns an error if p was acknowledged before, for another payload:
// a position given twice.
func (l *Ledger) Acked(room string, p Pos, payload string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.rooms[room]
	if m == nil {
		m = make(map[Pos]string)
		l.rooms[room] = m
	}
	if prev, ok := m[p]; ok && prev != payload {
		return fmt.Errorf("%s %v acknowledged for %q and for %q", room, p, prev, payload)
	}
	m[p] = payload
	return nil
}

// Len returns how many publishes were acknowledged in room.
func (l *Ledger) Len(room string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.rooms[room])
}

// entries returns a copy of room's acknowledged positions.
func (l *Ledger) entries(room string) map[Pos]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.rooms[room])
}

// gap is a Gap event: the positions after last up to and including
// resumed are lost; when the epochs differ, so is everything of last's
// epoch after it.
type gap struct{ last, resumed Pos }

func (g gap) covers(p Pos) bool {
	if g.last.Epoch == g.resumed.Epoch {
		return p.Epoch == g.last.Epoch && p.Offset > g.last.Offset && p.Offset <= g.resumed.Offset
	}
	return (p.Epoch == g.last.Epoch && p.Offset > g.last.Offset) || (p.Epoch == g.resumed.Epoch && p.Offset <= g.resumed.Offset)
}

// roomTally is one room of a Tally.
type roomTally struct {
	joined    Pos            // where the join left off: nothing up to it is expected
	last      Pos            // the last message delivered, or where the join or the last gap left off
	epochs    []string       // the epochs delivered, in order
	delivered map[Pos]string // position → payload
	payloads  map[string]struct{}
	gaps      []gap
}

// Tally follows one subscriber's events. It is safe for concurrent use:
// one goroutine feeds it while another checks it.
type Tally struct {
	mu     sync.Mutex
	rooms  map[string]*roomTally
	counts Counts
}

// NewTally returns a tally with no room.
func NewTally() *Tally { return &Tally{rooms: make(map[string]*roomTally)} }

// Joined records the join of room at p, the room's position at the join:
// delivery is expected to go on with the message after it.
func (t *Tally) Joined(room string, p Pos) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := &roomTally{joined: p, last: p, delivered: make(map[Pos]string), payloads: make(map[string]struct{})}
	if p.Epoch != "" {
		r.epochs = append(r.epochs, p.Epoch)
	}
	t.rooms[room] = r
}

// Message records a message delivered in room at p with payload, and
// classifies it against the room's last position.
func (t *Tally) Message(room string, p Pos, payload string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.room(room)
	t.counts.Delivered++
	_, samePos := r.delivered[p]
	_, samePayload := r.payloads[payload]
	if samePos || samePayload || p == r.last {
		t.counts.Duplicated++
		return
	}
	r.delivered[p] = payload
	r.payloads[payload] = struct{}{}
	switch {
	case p.Epoch == r.last.Epoch:
		switch {
		case p.Offset < r.last.Offset:
			t.counts.Reordered++
			return
		case p.Offset > r.last.Offset+1:
			t.counts.Silent++
		}
	case slices.Contains(r.epochs, p.Epoch):
		t.counts.Reordered++ // back to an epoch already left
		return
	default:
		// A new epoch needs a Gap first, unless nothing was delivered or
		// joined in any epoch before and this is its first message.
		if r.last != (Pos{}) || p.Offset != 1 {
			t.counts.Silent++
		}
		r.epochs = append(r.epochs, p.Epoch)
	}
	r.last = p
}

// Gap records a Gap event of room: the messages after last up to and
// including resumed are lost. A last other than the room's last position
// counts as a silent gap too, since what lies between is lost unsaid.
func (t *Tally) Gap(room string, last, resumed Pos) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.room(room)
	t.counts.Signalled++
	if last != r.last {
		t.counts.Silent++
	}
	r.gaps = append(r.gaps, gap{last, resumed})
	if resumed.Epoch != "" && !slices.Contains(r.epochs, resumed.Epoch) {
		r.epochs = append(r.epochs, resumed.Epoch)
	}
	r.last = resumed
}

// Reconnected records a Reconnected event.
func (t *Tally) Reconnected() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counts.Reconnects++
}

// room returns room's tally, made at the first use for a room never
// joined (then every message of it is checked against nothing).
func (t *Tally) room(room string) *roomTally {
	r := t.rooms[room]
	if r == nil {
		r = &roomTally{delivered: make(map[Pos]string), payloads: make(map[string]struct{})}
		t.rooms[room] = r
	}
	return r
}

// Counts returns the counts so far.
func (t *Tally) Counts() Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts
}

// Gaps returns how many Gap events room had.
func (t *Tally) Gaps(room string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.room(room).gaps)
}

// Last returns room's last position: that of the last message delivered,
// or where the last join or gap left off.
func (t *Tally) Last(room string) Pos {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.room(room).last
}

// Check compares room with the publishes l acknowledged in it after the
// join: missing are the acknowledged positions neither delivered nor
// covered by a Gap, wrong those delivered with another payload than the
// acknowledged one.
func (t *Tally) Check(l *Ledger, room string) (missing, wrong []Pos) {
	acked := l.entries(room)
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.room(room)
	for p, payload := range acked {
		got, ok := r.delivered[p]
		switch {
		case p.Epoch == r.joined.Epoch && p.Offset <= r.joined.Offset:
		case ok && got != payload:
			wrong = append(wrong, p)
		case !ok && !slices.ContainsFunc(r.gaps, func(g gap) bool { return g.covers(p) }):
			missing = append(missing, p)
		}
	}
	byPos := func(a, b Pos) int { return cmp.Or(cmp.Compare(a.Epoch, b.Epoch), cmp.Compare(a.Offset, b.Offset)) }
	slices.SortFunc(missing, byPos)
	slices.SortFunc(wrong, byPos)
	return missing, wrong
}
