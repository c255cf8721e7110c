package broker

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// Errors from joins.
var (
	ErrAlreadyJoined = errors.New("broker: room already joined")
	ErrNotJoined     = errors.New("broker: room not joined")
	ErrCancelled     = errors.New("broker: join cancelled by a leave or close")
)

// A join has two halves, so that whoever serves a subscriber never waits on
// the network for one: BeginJoin reserves the room and starts whatever the
// join needs from elsewhere, and FinishJoin, once the join is ready, places
// the subscriber's cursor under the room's lock and reports the result. The
// in-memory hub needs nothing from elsewhere, so its joins are ready at
// once; an engine's join may be ready only after a round trip.
//
// A PendingJoin moves through these states:
//
//	begun ──(ready: ready func called)──▶ ready ──FinishJoin──▶ finished
//	  │                                    │
//	  └──────────(Leave, Close)────────────┴──▶ cancelled ──FinishJoin──▶ ErrCancelled
//
// The room counts a pending join as a subscription, so it is not freed (and
// its history not dropped) between the halves.

// PendingJoin is a join begun by BeginJoin. Ready may be called from any
// goroutine; FinishJoin and cancelling belong to the subscriber's owner.
type PendingJoin struct {
	s     *Subscriber
	room  *room
	opts  JoinOptions
	ready atomic.Bool
	err   error // why it cannot finish, set before ready
	done  bool  // finished or cancelled: the room's reservation is released
}

// Room is the name of the room being joined.
func (p *PendingJoin) Room() string { return p.room.name }

// Ready reports whether FinishJoin would complete the join without waiting.
func (p *PendingJoin) Ready() bool { return p.ready.Load() }

// Join adds the subscriber to room. It collects every message published
// after the join; with a Position whose messages the room still retains
// (same epoch, within history size and age, and within the backlog), every
// message after that position first, and Recovered is true. Otherwise none
// of them: it is never given part of a gap (see resume).
//
// Join is BeginJoin and FinishJoin in one call: it may wait for the join to
// be ready, so it is for callers that may wait.
func (s *Subscriber) Join(ctx context.Context, room string, opts JoinOptions) (JoinResult, error) {
	ready := make(chan struct{})
	p, err := s.BeginJoin(ctx, room, opts, func() { close(ready) })
	if err != nil {
		return JoinResult{}, err
	}
	select {
	case <-ready:
	case <-ctx.Done():
		p.cancel()
		return JoinResult{}, ctx.Err()
	}
	return s.FinishJoin(p)
}

// BeginJoin starts adding the subscriber to room, with the same rules as
// Join, and never waits: ready is called once, from any goroutine and
// possibly before BeginJoin returns, when FinishJoin can complete the join
// at once. ready must return quickly and must not call into the broker. An
// error known at once (the hub is closed, the room is joined already or
// would be one room too many) is returned instead.
func (s *Subscriber) BeginJoin(ctx context.Context, room string, opts JoinOptions, ready func()) (*PendingJoin, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.b.closed.Load() {
		return nil, ErrClosed
	}
	if s.find(room) >= 0 || s.findPending(room) >= 0 {
		return nil, ErrAlreadyJoined
	}
	r, err := s.b.lockRoom(room, true, s.b.owners.of(ctx))
	if err != nil {
		return nil, err
	}
	r.subs++ // reserved until FinishJoin
	r.mu.Unlock()
	p := &PendingJoin{s: s, room: r, opts: opts}
	s.pending = append(s.pending, p)
	if s.b.engine != nil {
		if !s.b.spawn(func() { s.b.prepareJoin(ctx, p, ready) }) {
			p.err = ErrClosed
			p.ready.Store(true)
			ready()
		}
		return p, nil
	}
	p.ready.Store(true)
	ready()
	return p, nil
}

// FinishJoin completes p, which must be ready (or cancelled), and reports
// the join's result as Join does.
func (s *Subscriber) FinishJoin(p *PendingJoin) (JoinResult, error) {
	if i := s.findPending(p.room.name); i >= 0 && s.pending[i] == p {
		s.pending = append(s.pending[:i], s.pending[i+1:]...)
	}
	if p.done {
		return JoinResult{}, ErrCancelled
	}
	p.done = true
	r := p.room
	r.mu.Lock()
	err := p.err
	var cursor uint64
	var recovered bool
	if err == nil && r.dead { // closed by CloseRoom meanwhile
		err = ErrRoomClosed
	}
	if err == nil {
		cursor, recovered, err = s.b.resume(r, p.opts.Position, time.Now())
	}
	if err == nil && p.opts.Presence && s.b.engine == nil { // an engine's join added it already
		err = s.b.addMember(r, s.id, p.opts.Info)
	}
	if err != nil {
		r.subs--
		empty := r.subs == 0
		r.mu.Unlock()
		if empty {
			s.b.release(r)
		}
		return JoinResult{}, err
	}
	res := JoinResult{Offset: r.msgs.head, Epoch: r.epoch, Recovered: recovered}
	x := &subscription{sub: s, room: r, cursor: cursor, sent: cursor, visible: p.opts.Presence, events: p.opts.Events, evCursor: r.events.head, gen: r.gen, evGen: r.evGen}
	if p.opts.Events {
		r.listeners++
	}
	r.mu.Unlock()
	s.mu.Lock()
	s.subs = append(s.subs, x)
	s.mu.Unlock()
	return res, nil
}

// cancel gives up p: its room's reservation is released, and FinishJoin
// reports ErrCancelled.
func (p *PendingJoin) cancel() {
	if p.done {
		return
	}
	p.done = true
	s, r := p.s, p.room
	if i := s.findPending(r.name); i >= 0 && s.pending[i] == p {
		s.pending = append(s.pending[:i], s.pending[i+1:]...)
	}
	r.mu.Lock()
	r.subs--
	empty := r.subs == 0
	r.mu.Unlock()
	if empty {
		s.b.release(r)
	}
}
