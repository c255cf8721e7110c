package redisengine

import (
	"context"
	"errors"
	"time"

	"github.com/roomcast/roomcast/broker"
)

// Track implements broker.Engine. It subscribes the room's channel on the
// shard's PUB/SUB session (waiting, within ctx and Config.Timeout, for one
// to be up) and, once Redis confirmed it, reads the room's position and,
// with after of the room's epoch, the newest limit retained entries after
// after, oldest first, so that they end at head. A room that has no epoch
// of the current Redis process is given one, so its first publish follows
// head.
//
// Every entry after head then reaches the Sink, in order, or the Sink is
// shown a gap, a new epoch, or a Reset. Deliveries may begin before Track
// returns. Tracking a tracked room again only reads; Track calls and
// Untrack calls of a room take effect in the order they are made. Safe for
// concurrent use.
func (e *Engine) Track(ctx context.Context, room string, after *broker.Position, limit int) (broker.Position, []broker.Entry, error) {
	if e.isClosed() {
		return broker.Position{}, nil, broker.ErrClosed
	}
	s := e.shardOf(room)
	bctx, cancel := e.bound(ctx)
	defer cancel()
	t := s.hold(room)
	snap, err := s.trackRead(bctx, t, after, limit)
	s.release(t, err == nil)
	if err != nil {
		return broker.Position{}, nil, e.unavailable(ctx, s, err)
	}
	var backfill []broker.Entry
	if after != nil && (after.Epoch == "" || after.Epoch == snap.epoch) {
		backfill = e.retained(snap.entries, snap.head, time.Now())
	}
	return broker.Position{Offset: snap.head, Epoch: snap.epoch}, backfill, nil
}

func (s *shard) trackRead(ctx context.Context, t *track, after *broker.Position, limit int) (snapshot, error) {
	if err := s.subscribe(ctx, t); err != nil {
		return snapshot{}, err
	}
	q := query{create: true, newest: true}
	if after != nil {
		q.after, q.limit = after.Offset, max(min(limit, s.e.cfg.HistoryMessages), 0)
	}
	snap, err := s.read(ctx, t.room, q)
	if err != nil {
		return snapshot{}, err
	}
	t.mu.Lock()
	if !t.ready {
		t.start(snap)
	}
	t.mu.Unlock()
	return snap, nil
}

// hold returns room's track, making it if the room is not tracked, and
// cancels a pending Untrack.
func (s *shard) hold(room string) *track {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.rooms[room]
	if t == nil {
		t = &track{s: s, room: room, channel: s.e.channel(room)}
		s.rooms[room] = t
	}
	s.stopLinger(t)
	t.tracks++
	return t
}

// release ends a Track call of t. A room whose every Track failed before
// it became ready is dropped: no one holds it.
func (s *shard) release(t *track, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t.tracks--
	if ok || t.tracks > 0 || t.linger != nil || s.rooms[t.room] != t {
		return
	}
	if !t.started.Load() {
		s.drop(t)
	}
}

// subscribe makes sure t's channel is subscribed on the live session,
// waiting for one if there is none. It returns once Redis confirmed the
// SUBSCRIBE: every frame published after that reaches the session.
func (s *shard) subscribe(ctx context.Context, t *track) error {
	for {
		s.mu.Lock()
		sess, up := s.sess, s.up
		if sess != nil && t.subGen == sess.gen {
			s.mu.Unlock()
			return nil
		}
		var req subscription
		if sess != nil {
			req = subscription{t: t, done: make(chan error, 1)}
			s.subs = append(s.subs, req)
			s.wake()
		}
		s.mu.Unlock()
		if sess == nil {
			select {
			case <-up:
				continue
			case <-ctx.Done():
				return errors.New("no PUB/SUB connection: " + context.Cause(ctx).Error())
			}
		}
		select {
		case err := <-req.done:
			if err == nil {
				continue // confirmed on sess: done, unless sess ended meanwhile
			}
			select {
			case <-sess.down: // it broke: the next session subscribes the room
			case <-ctx.Done():
				return err
			}
		case <-ctx.Done():
			return errors.New("SUBSCRIBE not confirmed: " + context.Cause(ctx).Error())
		}
	}
}

// Untrack implements broker.Engine: the room stays subscribed for
// Config.Linger, then is unsubscribed unless Track came again. It does not
// block, and takes no lock that is held while the Sink is called, so the
// hub may call it under its own locks. Safe for concurrent use.
func (e *Engine) Untrack(room string) {
	s := e.shardOf(room)
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.rooms[room]
	if t == nil || t.linger != nil {
		return
	}
	if e.cfg.Linger < 0 {
		s.drop(t)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return
	}
	e.workers.Add(1)
	t.linger = time.AfterFunc(e.cfg.Linger, func() {
		defer e.workers.Done()
		s.mu.Lock()
		defer s.mu.Unlock()
		if t.linger != nil && s.rooms[room] == t {
			t.linger = nil
			s.drop(t)
		}
	})
}

// stopLinger cancels t's pending Untrack. Caller holds s.mu.
func (s *shard) stopLinger(t *track) {
	if t.linger != nil && t.linger.Stop() {
		s.e.workers.Done()
	}
	t.linger = nil
}

// stopLingers cancels every pending Untrack, for Close.
func (s *shard) stopLingers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.rooms {
		s.stopLinger(t)
	}
}

// drop stops tracking t and queues its UNSUBSCRIBE for the session loop.
// Caller holds s.mu.
func (s *shard) drop(t *track) {
	delete(s.rooms, t.room)
	t.gone.Store(true)
	s.unsubs = append(s.unsubs, t.room)
	s.wake()
}

// wake makes the session's goroutine look at subs and unsubs.
func (s *shard) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}
