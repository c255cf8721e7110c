package broker

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/mem"

	"github.com/roomcast/roomcast/internal/wire"
)

// Subscriber is one session's membership in rooms: a cursor per room and a
// wake-up signal. ID, Wake and Sent may be called from any goroutine; every
// other method must be called by one goroutine at a time (whoever delivers
// the session's messages owns it).
type Subscriber struct {
	b      *Hub
	id     string
	wake   chan struct{}
	notify func() // called instead of signalling wake, when set
	next   int    // where the next Collect starts, for fairness between rooms

	delivered atomic.Uint64 // messages and presence events Collect returned, for Delivered

	mu      sync.Mutex      // guards changes to subs and sent, for Sent
	subs    []*subscription // in join order
	pending []*PendingJoin  // begun and not finished, in begin order
}

type subscription struct {
	sub      *Subscriber
	room     *room
	cursor   uint64 // last offset collected
	sent     uint64 // last offset committed as sent
	events   bool   // wants presence events
	evCursor uint64 // last event collected
	visible  bool   // listed in the room's presence
	waiting  bool   // in room.waiters; guarded by room.mu
	gen      uint64 // room.gen at the join
	evGen    uint64 // room.evGen at the join
}

// JoinOptions are the choices of a join.
type JoinOptions struct {
	Position *Position         // resume after it; nil to start after the newest message
	Presence bool              // list the subscriber in the room's presence
	Info     map[string]string // shown with it in presence; not modified afterwards
	Events   bool              // receive the room's presence events
}

// Position is a place in a room's sequence of messages. An empty Epoch
// matches the room's current one.
type Position struct {
	Offset uint64
	Epoch  string
}

// JoinResult is what a join found.
type JoinResult struct {
	Offset    uint64 // the room's newest offset at the join
	Epoch     string // the room's epoch
	Recovered bool   // with a Position: every message after it will be collected
}

// NewSubscriber returns a subscriber in no room. id identifies its session:
// messages published with that id as exclude are skipped.
func (b *Hub) NewSubscriber(id string) *Subscriber {
	s := &Subscriber{b: b, id: id, wake: make(chan struct{}, 1)}
	s.notify = s.signal
	return s
}

// NewNotifiedSubscriber is NewSubscriber for callers that schedule many
// subscribers on few goroutines: instead of signalling Wake, the broker calls
// notify when a room the subscriber parked in has something new. notify runs
// on the publisher's goroutine while it holds the room's lock, at most once
// per room per Park; it must return quickly and must not call into the
// broker.
func (b *Hub) NewNotifiedSubscriber(id string, notify func()) *Subscriber {
	return &Subscriber{b: b, id: id, notify: notify}
}

// ID returns the id the subscriber was created with.
func (s *Subscriber) ID() string { return s.id }

// Wake returns a channel that receives a value after Park when a room the
// subscriber parked in has something new; nil for a notified subscriber.
// Spurious wake-ups are possible.
func (s *Subscriber) Wake() <-chan struct{} { return s.wake }

func (s *Subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Rooms is how many rooms the subscriber is in or joining.
func (s *Subscriber) Rooms() int { return len(s.subs) + len(s.pending) }

func (s *Subscriber) find(room string) int {
	return slices.IndexFunc(s.subs, func(x *subscription) bool { return x.room.name == room })
}

func (s *Subscriber) findPending(room string) int {
	return slices.IndexFunc(s.pending, func(p *PendingJoin) bool { return p.room.name == room })
}

// Leave removes the subscriber from room. Nothing of the room is collected
// after it returns. A join of the room still pending is cancelled: its
// FinishJoin reports ErrCancelled.
func (s *Subscriber) Leave(room string) error {
	if i := s.findPending(room); i >= 0 {
		s.pending[i].cancel()
		return nil
	}
	i := s.find(room)
	if i < 0 {
		return ErrNotJoined
	}
	s.drop(s.subs[i])
	s.mu.Lock()
	s.subs = slices.Delete(s.subs, i, i+1)
	s.mu.Unlock()
	return nil
}

// Close leaves every room and cancels every pending join. It is idempotent.
func (s *Subscriber) Close() {
	pending := s.pending
	s.pending = nil
	for _, p := range pending {
		p.cancel()
	}
	for _, x := range s.subs {
		s.drop(x)
	}
	s.mu.Lock()
	s.subs = nil
	s.mu.Unlock()
}

func (s *Subscriber) drop(x *subscription) {
	r := x.room
	r.mu.Lock()
	r.unpark(x)
	r.subs--
	if x.events {
		r.listeners--
	}
	if x.visible && s.b.engine != nil {
		s.b.removeMemberFromEngine(r.name, s.id)
	} else if x.visible {
		s.b.removeMember(r, s.id)
	}
	empty := r.subs == 0
	r.mu.Unlock()
	if empty {
		s.b.release(r)
	}
}

// Collect returns, as one encoded SubscribeResponse frame, the messages past
// the subscriber's cursors, up to about maxBytes (at least one message), and
// advances the cursors past them; nil if there is nothing new. The frame's
// buffers are shared and read-only: hand them to the transport as they are.
//
// It returns a *LagError, and nothing else, when the subscriber is further
// behind in any room than the broker's backlog limit, and a *GapError when a
// room's sequence broke on this node (see Sink).
func (s *Subscriber) Collect(maxBytes int) (mem.BufferSlice, error) {
	var frame mem.BufferSlice
	total, entries := 0, 0 // a frame may hold more buffers than entries (entry.appendTo)
	each := s.b.cfg.encodeEach
	n := len(s.subs)
	for i := 0; i < n && total < maxBytes; i++ {
		x := s.subs[(s.next+i)%n]
		r := x.room
		r.mu.RLock()
		if x.gen != r.gen || (x.events && x.evGen != r.evGen) {
			r.mu.RUnlock()
			return nil, s.gapError(x)
		}
		if x.events {
			if !s.within(&r.events, x.evCursor) {
				r.mu.RUnlock()
				return nil, s.lagError(x)
			}
			frame, total = s.takeFrom(each, frame, total, maxBytes, &r.events, &x.evCursor, &entries)
		}
		if !s.within(&r.msgs, x.cursor) {
			r.mu.RUnlock()
			return nil, s.lagError(x)
		}
		frame, total = s.takeFrom(each, frame, total, maxBytes, &r.msgs, &x.cursor, &entries)
		r.mu.RUnlock()
	}
	s.next++
	if total == 0 {
		return nil, nil
	}
	frame[0] = wire.BatchHeader(total)
	s.b.stats.delivered.Add(uint64(entries))
	s.delivered.Add(uint64(entries))
	return frame, nil
}

// within reports whether what lies past cursor in q is inside the backlog.
func (s *Subscriber) within(q *ring, cursor uint64) bool {
	n, bytes, lost := q.pending(cursor)
	return !lost && n <= uint64(s.b.cfg.backlogMessages) && bytes <= uint64(s.b.cfg.backlogBytes)
}

// takeFrom is take, or takeEncodingEach when each is set.
func (s *Subscriber) takeFrom(each bool, frame mem.BufferSlice, total, maxBytes int, q *ring, cursor *uint64, entries *int) (mem.BufferSlice, int) {
	if each {
		return s.takeEncodingEach(frame, total, maxBytes, q, cursor, entries)
	}
	return s.take(frame, total, maxBytes, q, cursor, entries)
}

// take appends q's entries past *cursor to frame, advancing the cursor and
// counting them in *entries, until total reaches maxBytes. The frame's
// first slot is left for its header. This is the fan-out's inner loop: a
// shared buffer appended per delivery.
func (s *Subscriber) take(frame mem.BufferSlice, total, maxBytes int, q *ring, cursor *uint64, entries *int) (mem.BufferSlice, int) {
	for *cursor < q.head && total < maxBytes {
		*cursor++
		e := q.at(*cursor)
		if e.exclude != "" && e.exclude == s.id {
			continue
		}
		if frame == nil {
			frame = make(mem.BufferSlice, 1, 1+min(q.head-*cursor+1, 64))
		}
		frame = e.appendTo(frame)
		total += e.size
		*entries++
	}
	return frame, total
}

// takeEncodingEach is take for WithEncodePerSubscriber: each message encoded
// again for this subscriber, as a per-subscriber send loop does, so that
// benchmarks can measure what roomcast saves. Presence events, which that
// mode does not keep unencoded, are shared as usual.
func (s *Subscriber) takeEncodingEach(frame mem.BufferSlice, total, maxBytes int, q *ring, cursor *uint64, entries *int) (mem.BufferSlice, int) {
	if q.plain == nil {
		return s.take(frame, total, maxBytes, q, cursor, entries)
	}
	for *cursor < q.head && total < maxBytes {
		*cursor++
		e := q.at(*cursor)
		if e.exclude != "" && e.exclude == s.id {
			continue
		}
		b, err := wire.MessageEntry(q.plainAt(*cursor))
		if err != nil {
			continue
		}
		s.b.stats.encoded.Add(1)
		if frame == nil {
			frame = make(mem.BufferSlice, 1, 1+min(q.head-*cursor+1, 64))
		}
		frame = append(frame, mem.SliceBuffer(b))
		total += len(b)
		*entries++
	}
	return frame, total
}

// Commit records that everything collected so far was sent: the offsets a
// LagError reports.
func (s *Subscriber) Commit() {
	s.mu.Lock()
	for _, x := range s.subs {
		x.sent = x.cursor
	}
	s.mu.Unlock()
}

// Sent returns, for each room the subscriber is in, the last offset
// committed as sent.
func (s *Subscriber) Sent() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	sent := make(map[string]uint64, len(s.subs))
	for _, x := range s.subs {
		sent[x.room.name] = x.sent
	}
	return sent
}

// Delivered returns how many messages and presence events Collect has
// returned. It may be called from any goroutine.
func (s *Subscriber) Delivered() uint64 { return s.delivered.Load() }

// SentIn returns the last offset of room committed as sent, and whether the
// subscriber is in room. It may be called from any goroutine.
func (s *Subscriber) SentIn(room string) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.subs {
		if x.room.name == room {
			return x.sent, true
		}
	}
	return 0, false
}

// Membership is a room a subscriber is in, with the join's presence
// choices.
type Membership struct {
	Room     string
	Presence bool // listed in the room's presence
	Events   bool // receives the room's presence events
}

// Memberships returns the rooms the subscriber is in, in join order, with
// how each was joined: what a caller checks again when the session's
// permissions change.
func (s *Subscriber) Memberships() []Membership {
	ms := make([]Membership, len(s.subs))
	for i, x := range s.subs {
		ms[i] = Membership{Room: x.room.name, Presence: x.visible, Events: x.events}
	}
	return ms
}

// Park registers the subscriber for a wake-up from every room it is in and
// reports whether it may wait on Wake: false when a room already has
// something new, and Collect should be called instead.
func (s *Subscriber) Park() bool {
	for _, x := range s.subs {
		r := x.room
		r.mu.Lock()
		if r.msgs.head > x.cursor || x.gen != r.gen || x.evGen != r.evGen || (x.events && r.events.head > x.evCursor) {
			r.mu.Unlock()
			return false
		}
		if !x.waiting {
			x.waiting = true
			r.waiters = append(r.waiters, x)
		}
		r.mu.Unlock()
	}
	return true
}

// LagError reports a subscriber that fell further behind than the backlog
// limit. Its message names, for each room, the last offset sent, from which a
// client can resume.
type LagError struct {
	Room     string            // the room where the limit was crossed
	Messages int               // the backlog limit in messages
	Bytes    int               // the backlog limit in bytes
	Sent     map[string]uint64 // last offset committed as sent, per room
}

func (e *LagError) Error() string {
	return fmt.Sprintf("slow consumer: more than %d messages or %d bytes behind in room %q; %s", e.Messages, e.Bytes, e.Room, FormatSent(e.Sent))
}

// FormatSent renders the last offset sent per room, as status messages give it.
func FormatSent(sent map[string]uint64) string {
	rooms := make([]string, 0, len(sent))
	for r := range sent {
		rooms = append(rooms, r)
	}
	slices.Sort(rooms)
	var b strings.Builder
	b.WriteString("last offset sent per room:")
	for _, r := range rooms {
		fmt.Fprintf(&b, " %s=%d", r, sent[r])
	}
	return b.String()
}

func (s *Subscriber) lagError(at *subscription) *LagError {
	s.b.stats.lagged.Add(1)
	return &LagError{Room: at.room.name, Messages: s.b.cfg.backlogMessages, Bytes: s.b.cfg.backlogBytes, Sent: s.Sent()}
}

func (s *Subscriber) gapError(at *subscription) *GapError {
	closed := at.room.closed // set before the gen that sent us here changed
	if !closed {
		s.b.stats.lagged.Add(1)
	}
	return &GapError{Room: at.room.name, Sent: s.Sent(), Closed: closed}
}

// Stalled records that the caller cut the subscriber off for not taking
// what it was sent, for Stats.
func (s *Subscriber) Stalled() { s.b.stats.lagged.Add(1) }
