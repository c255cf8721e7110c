package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc/mem"
)

// Errors from Join and Leave.
var (
	ErrAlreadyJoined = errors.New("broker: room already joined")
	ErrNotJoined     = errors.New("broker: room not joined")
)

// Subscriber is one session's membership in rooms: a cursor per room and a
// wake-up signal. ID, Wake and Sent may be called from any goroutine; every
// other method must be called by one goroutine at a time (the session's
// writer owns it).
type Subscriber struct {
	b    *Memory
	id   string
	wake chan struct{}
	next int // where the next Collect starts, for fairness between rooms

	mu   sync.Mutex      // guards changes to subs and sent, for Sent
	subs []*subscription // in join order
}

type subscription struct {
	sub     *Subscriber
	room    *room
	cursor  uint64 // last offset collected
	sent    uint64 // last offset committed as sent
	waiting bool   // in room.waiters; guarded by room.mu
}

// NewSubscriber returns a subscriber in no room. id identifies its session:
// messages published with that id as exclude are skipped.
func (b *Memory) NewSubscriber(id string) *Subscriber {
	return &Subscriber{b: b, id: id, wake: make(chan struct{}, 1)}
}

// ID returns the id the subscriber was created with.
func (s *Subscriber) ID() string { return s.id }

// Wake returns a channel that receives a value after Park when a room the
// subscriber parked in has something new. Spurious wake-ups are possible.
func (s *Subscriber) Wake() <-chan struct{} { return s.wake }

func (s *Subscriber) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Rooms is how many rooms the subscriber is in.
func (s *Subscriber) Rooms() int { return len(s.subs) }

func (s *Subscriber) find(room string) int {
	return slices.IndexFunc(s.subs, func(x *subscription) bool { return x.room.name == room })
}

// Join adds the subscriber to room, at the room's newest offset: it receives
// every message published after the join. It returns that offset.
func (s *Subscriber) Join(ctx context.Context, room string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.b.closed.Load() {
		return 0, ErrClosed
	}
	if s.find(room) >= 0 {
		return 0, ErrAlreadyJoined
	}
	r := s.b.lockRoom(room, true)
	r.subs++
	x := &subscription{sub: s, room: r, cursor: r.head, sent: r.head}
	r.mu.Unlock()
	s.mu.Lock()
	s.subs = append(s.subs, x)
	s.mu.Unlock()
	return x.cursor, nil
}

// Leave removes the subscriber from room. Nothing of the room is collected
// after it returns.
func (s *Subscriber) Leave(room string) error {
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

// Close leaves every room. It is idempotent.
func (s *Subscriber) Close() {
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
// behind in any room than the broker's backlog limit.
func (s *Subscriber) Collect(maxBytes int) (mem.BufferSlice, error) {
	var frame mem.BufferSlice
	total := 0
	n := len(s.subs)
	for i := 0; i < n && total < maxBytes; i++ {
		x := s.subs[(s.next+i)%n]
		r := x.room
		r.mu.RLock()
		msgs, bytes, lost := r.pending(x.cursor)
		if lost || msgs > uint64(s.b.cfg.backlogMessages) || bytes > uint64(s.b.cfg.backlogBytes) {
			r.mu.RUnlock()
			return nil, s.lagError(x)
		}
		if msgs > 0 && frame == nil {
			frame = make(mem.BufferSlice, 1, 1+min(msgs, 64))
		}
		for x.cursor < r.head && total < maxBytes {
			x.cursor++
			e := r.at(x.cursor)
			if e.exclude != "" && e.exclude == s.id {
				continue
			}
			frame = append(frame, e.buf)
			total += e.size
		}
		r.mu.RUnlock()
	}
	s.next++
	if total == 0 {
		return nil, nil
	}
	frame[0] = frameHeader(total)
	s.b.stats.delivered.Add(uint64(len(frame) - 1))
	return frame, nil
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

// Park registers the subscriber for a wake-up from every room it is in and
// reports whether it may wait on Wake: false when a room already has
// something new, and Collect should be called instead.
func (s *Subscriber) Park() bool {
	for _, x := range s.subs {
		r := x.room
		r.mu.Lock()
		if r.head > x.cursor {
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

// Stalled records that the caller cut the subscriber off for not taking
// what it was sent, for Stats.
func (s *Subscriber) Stalled() { s.b.stats.lagged.Add(1) }
