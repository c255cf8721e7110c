package client

import (
	"context"
	"strconv"
	"sync"
	"time"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// conn is one Subscribe stream of a Subscription. Its receiver goroutine
// reads it until it ends; the subscription's run goroutine owns both.
type conn struct {
	ctx     context.Context
	cancel  context.CancelFunc // ends the stream
	stream  subscribeStream
	session string
	expiry  time.Time // when the stream's credential expires; zero if unknown, or not refreshable

	sendMu sync.Mutex // serializes Send

	// Guarded by Subscription.mu.
	pending   map[string]*pending // commands waiting for their reply, by id
	ready     bool                // every room is joined: the stream works
	rejoining int                 // rejoin replies still to come
	staged    []*Event            // messages received while rejoining, queued once done
	rejoined  []rejoined          // outcomes of the rejoins so far
	reconnect *Reconnected        // queued once rejoining is done
	lostAt    time.Time           // when the last working stream ended
	fatal     error               // a rejoin failed for good: the subscription ends
	retry     error               // a rejoin failed: reconnect

	done chan struct{} // closed when the receiver has returned
	err  error         // what Recv returned; read after done
	resp response      // the receiver's: the response being read
}

// cmdKind is what a pending command does.
type cmdKind int

const (
	cmdJoin cmdKind = iota
	cmdLeave
	cmdRefresh
)

// pending is a command waiting for its reply.
type pending struct {
	kind   cmdKind
	room   *roomState                    // for a join
	rejoin bool                          // a join the reconnect waits for
	reply  chan *roomcastv1.CommandReply // for leave and refresh; 1-buffered
}

// rejoined is the outcome of a room's rejoin, applied once every room is
// rejoined.
type rejoined struct {
	st      *roomState
	rejoin  Rejoin
	resumed Position
}

// send writes req to the stream. An error means the stream is gone; the
// receiver learns why from Recv.
func (c *conn) send(req *roomcastv1.SubscribeRequest) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.stream.Send(req)
}

// receive is the only reader of c's stream. It runs until the stream ends.
func (s *Subscription) receive(c *conn) {
	defer close(c.done)
	r := &c.resp
	for {
		s.waitForSpace(c)
		r.reset()
		if err := c.stream.RecvMsg(r); err != nil {
			c.err = err
			return
		}
		switch {
		case r.reply != nil:
			s.replied(c, r.reply)
		case r.batch:
			s.received(c, r.msgs)
		}
		// Anything else (a repeated session event, an event a later server
		// adds) is ignored.
	}
}

// waitForSpace returns once the queue has room for more messages, a command
// waits for its reply, or the stream is ending.
func (s *Subscription) waitForSpace(c *conn) {
	for {
		s.mu.Lock()
		ok := s.hasSpace() || len(c.pending) > 0
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.space:
		case <-c.ctx.Done():
			return
		}
	}
}

// received queues messages, each in its event, or stages them while the
// rooms are rejoined.
func (s *Subscription) received(c *conn, msgs []*Event) {
	if len(msgs) == 0 {
		return
	}
	s.mu.Lock()
	for _, ev := range msgs {
		if c.rejoining > 0 {
			c.staged = append(c.staged, ev)
		} else {
			s.pushMessage(ev)
		}
	}
	s.mu.Unlock()
	notify(s.arrived)
}

// replied hands a command's reply to whoever waits for it.
func (s *Subscription) replied(c *conn, r *roomcastv1.CommandReply) {
	s.mu.Lock()
	p := c.pending[r.GetId()]
	delete(c.pending, r.GetId())
	switch {
	case p == nil: // not ours, or of a stream the subscription gave up on
	case p.kind == cmdJoin:
		s.joinReplied(c, p.room, r)
		if p.rejoin {
			if c.rejoining--; c.rejoining == 0 && c.fatal == nil && c.retry == nil {
				s.rejoinedAll(c)
			}
		}
	default:
		if p.kind == cmdRefresh {
			s.revoke(r.GetRefresh().GetLeftRooms())
		}
		p.reply <- r // 1-buffered and used once: never blocks
	}
	s.mu.Unlock()
	notify(s.arrived)
}

// revoke takes the rooms a refresh left out of the subscription, so that
// they are not joined again, and tells the reader. Caller holds mu.
func (s *Subscription) revoke(rooms []string) {
	var gone []string
	for _, room := range rooms {
		if st := s.rooms[room]; st != nil && st.joined {
			s.remove(st)
			gone = append(gone, room)
		}
	}
	if len(gone) > 0 {
		s.push(&Event{Revoked: &Revoked{Rooms: gone}})
	}
}

// joinReplied applies the reply to a join of st on c. Caller holds mu.
func (s *Subscription) joinReplied(c *conn, st *roomState, r *roomcastv1.CommandReply) {
	if s.rooms[st.name] != st {
		return // left since
	}
	op := "join " + strconv.Quote(st.name)
	if e := r.GetError(); e != nil {
		err := replyError(op, e)
		if !st.joined { // the first join: its caller learns why
			s.remove(st)
			if st.waiter != nil {
				st.waiter <- joinOutcome{err: err}
				st.waiter = nil
			}
			return
		}
		// A room the subscription was in cannot be joined again.
		switch {
		case c.fatal != nil: // the first one says why
		case permanent(err):
			c.fatal = err
		case c.retry == nil:
			c.retry = err
		}
		c.cancel()
		return
	}
	j := r.GetJoin()
	now := Position{Offset: j.GetOffset(), Epoch: j.GetEpoch()}
	if !st.joined {
		res := JoinResult{Room: st.name, Offset: now.Offset, Epoch: now.Epoch, Recovered: j.GetRecovered()}
		st.joined, st.pos = true, now
		if st.after != nil && res.Recovered {
			st.pos.Offset = st.after.Offset
		}
		if st.waiter != nil {
			st.waiter <- joinOutcome{res: res}
			st.waiter = nil
		} else if st.after != nil && !res.Recovered {
			// Queued at once, ahead of the room's messages, which are all
			// still to come.
			s.push(&Event{Gap: &Gap{Room: st.name, LastDelivered: *st.after, Resumed: now}})
		}
		st.after = nil
		return
	}
	// A rejoin: applied once every room is rejoined, so that a stream lost
	// before then resumes from the same positions.
	out := rejoined{st: st, rejoin: Rejoin{Room: st.name, Recovered: j.GetRecovered(), From: st.pos, Resumed: st.pos}, resumed: st.pos}
	if !out.rejoin.Recovered {
		out.rejoin.Resumed, out.resumed = now, now
	}
	c.rejoined = append(c.rejoined, out)
}

// rejoinedAll queues, once every room is joined on a new stream, the
// Reconnected event, a Gap for each room that did not recover, and what the
// stream delivered meanwhile. Caller holds mu.
func (s *Subscription) rejoinedAll(c *conn) {
	c.ready = true
	rc := c.reconnect
	rc.Downtime = time.Since(c.lostAt)
	var gaps []*Event
	for _, out := range c.rejoined {
		if s.rooms[out.st.name] != out.st {
			continue // left since
		}
		out.st.pos = out.resumed
		rc.Rooms = append(rc.Rooms, out.rejoin)
		if !out.rejoin.Recovered {
			gaps = append(gaps, &Event{Gap: &Gap{Room: out.rejoin.Room, LastDelivered: out.rejoin.From, Resumed: out.rejoin.Resumed}})
		}
	}
	s.push(&Event{Reconnected: rc})
	for _, ev := range gaps {
		s.push(ev)
	}
	for _, ev := range c.staged {
		s.pushMessage(ev)
	}
	c.staged, c.rejoined, c.reconnect = nil, nil, nil
}
