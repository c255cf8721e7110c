package client

import (
	"context"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// conn is one Subscribe stream of a Subscription. The subscription's run
// goroutine reads it, or lets a Next call read it (see Subscription.Next),
// until it ends.
type conn struct {
	ctx     context.Context
	cancel  context.CancelFunc // ends the stream
	stream  subscribeStream
	session string
	expiry  time.Time // when the stream's credential expires; zero if unknown, or not refreshable

	sendMu   sync.Mutex     // serializes Send
	sending  sync.WaitGroup // what sends on the stream outside a caller: the rejoins' sender, the resend timer, a leave after a join
	refresh  *refresher     // refreshes the stream's credential
	stopWake func() bool    // stops the wake-up of a parked receiver when ctx is done

	// Guarded by Subscription.mu.
	pending   map[string]*pending     // commands waiting for their reply, by id
	ready     bool                    // every room is joined: the stream works
	rejoining int                     // rejoin replies still to come
	staged    []*Event                // messages received while rejoining, queued once done
	rejoined  map[*roomState]rejoined // outcomes of the rejoins so far
	reconnect *Reconnected            // queued once rejoining is done
	lostAt    time.Time               // when the last working stream ended
	fatal     error                   // a rejoin failed for good: the subscription ends
	retry     error                   // a rejoin failed: reconnect
	rateWait  rateWait                // rejoins refused by a command rate, sent again one at a time

	turn  readerTurn // who reads the stream; guarded by Subscription.mu
	ended bool       // RecvMsg failed: the stream is over; guarded by Subscription.mu

	done chan struct{} // closed once run has stopped reading it: the stream has ended
	err  error         // what RecvMsg returned; read after done
	resp response      // the turn holder's: the response being read
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
	resent bool                          // a rejoin sent again after the rate refused it
	reply  chan *roomcastv1.CommandReply // for leave and refresh; 1-buffered
	leave  chan *roomcastv1.CommandReply // for a join: the Leave waiting for it to be undone, if any; 1-buffered
}

// rejoined is the outcome of a room's rejoin, applied once every room is
// rejoined.
type rejoined struct {
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

// Who reads a conn's stream: only the holder of the turn calls RecvMsg.
type readerTurn int

const (
	turnFree   readerTurn = iota // nobody reads
	turnLoop                     // the receiver goroutine reads
	turnNext                     // a Next call reads
	turnLeased                   // the last Next to read keeps the turn, reading no more until Next is called again
)

// receive, on the receiver (run), reads c's stream whenever no Next call
// does, until the stream ends; then it closes c.done and reports true. It
// reports false if it parked instead (see takeTurn): the receiver returns,
// and wake starts it again.
func (s *Subscription) receive(c *conn) bool {
	for {
		switch s.takeTurn(c) {
		case parked:
			return false
		case over:
			close(c.done)
			return true
		}
		err := s.read(c, false)
		s.mu.Lock()
		c.turn = turnFree
		if err != nil {
			c.err, c.ended = err, true
		}
		waiting := s.waiting > 0
		s.mu.Unlock()
		if err != nil {
			close(c.done)
			return true
		}
		if waiting {
			notify(s.arrived) // a Next may read now
		}
	}
}

// What takeTurn tells the receiver to do.
type turnTaken int

const (
	reading turnTaken = iota // it has the turn: read
	parked                   // nothing to read for now: return, and let wake start it again
	over                     // the stream has ended
)

// takeTurn gives the receiver the turn when it should read c, or parks it
// until it should, or reports that a Next call has seen the stream end.
// The receiver reads while a command waits for its reply, while rejoins
// are outstanding, while the stream is ending, and otherwise while the queue has room and either no Next
// call waits to read by itself or one waits for the receiver to read.
// Every change that may make it read is followed by wake (or is the end of
// c.ctx, which calls wake), but for two that need no receiver: a Next that
// stops waiting to read by itself, and a Next reading while others wait
// (each waiting Next tries again as events arrive). So rather than wait
// for one, a receiver with nothing to read parks: records c in s.parked and returns, its goroutine
// with it. A subscription whose reader keeps the stream by calling Next
// thus runs no goroutine of its own.
func (s *Subscription) takeTurn(c *conn) turnTaken {
	for {
		s.mu.Lock()
		if c.ended {
			s.mu.Unlock()
			return over
		}
		ending := c.ctx.Err() != nil
		// While rejoins are outstanding the server writes to the stream
		// without the reader: reading on, the stream is not cut off for a
		// write that could not be made, and received bounds what it stages.
		urgent := ending || len(c.pending) > 0 || c.rejoining > 0
		free := c.turn == turnFree || (c.turn == turnLeased && (urgent || s.others > 0))
		if free && (urgent || (s.hasSpace() && (s.waiting == 0 || s.others > 0))) {
			c.turn = turnLoop
			s.mu.Unlock()
			return reading
		}
		if !ending {
			s.parked = c
			s.mu.Unlock()
			return parked
		}
		s.mu.Unlock()
		<-s.space // the Next reading returns soon, and says so
	}
}

// wake makes the receiver look again at whether it should read: it starts
// the receiver again if it parked, and otherwise signals s.space, for a
// receiver that waits for a Next call's read to end. Call it without mu,
// after a change that may make the receiver read.
func (s *Subscription) wake() {
	s.mu.Lock()
	c := s.parked
	s.parked = nil
	s.mu.Unlock()
	if c != nil {
		s.starts.Add(1)
		go s.run(c)
		return
	}
	notify(s.space)
}

// read reads one response from c's stream and hands it on. Only the holder
// of c's turn calls it; byNext says it is a Next call.
func (s *Subscription) read(c *conn, byNext bool) error {
	r := &c.resp
	r.reset()
	if err := c.stream.RecvMsg(r); err != nil {
		return err
	}
	switch {
	case r.reply != nil:
		s.replied(c, r.reply)
	case r.batch:
		s.received(c, r.msgs, byNext)
	}
	// Anything else (a repeated session event, an event a later server
	// adds) is ignored.
	return nil
}

// readable reports whether a Next call may read c itself. Caller holds mu.
func (s *Subscription) readable(c *conn) bool {
	return c != nil && c.ready && !c.ended && len(c.pending) == 0 && c.ctx.Err() == nil &&
		(c.turn == turnFree || c.turn == turnLeased)
}

// nextRead is a Next call's read of c, which readable allowed and whose
// turn it took. It keeps the turn for the next call unless a command waits
// for its reply or the stream ends or ended: then it wakes the receiver.
func (s *Subscription) nextRead(c *conn) {
	err := s.read(c, true)
	s.mu.Lock()
	switch {
	case err != nil:
		c.err, c.ended, c.turn = err, true, turnFree
	case len(c.pending) > 0 || c.ctx.Err() != nil:
		// A command waits for its reply, or the stream is ending and the
		// receiver, which may already wait for this read, must read it to
		// its end.
		c.turn = turnFree
	default:
		c.turn = turnLeased
	}
	leased, waiting := c.turn == turnLeased, s.waiting > 0
	s.mu.Unlock()
	if !leased {
		s.wake()
	}
	if waiting {
		notify(s.arrived) // another Next may read now
	}
}

// received queues messages, each in its event, or stages them while the
// rooms are rejoined (giving the stream up past what a rejoin waiting for
// the rate may stage), and wakes a Next waiting for them. A Next that read
// them takes them itself, and nextRead wakes the Next calls that wait to
// read: only those waiting for another context need a wake-up then.
//
// A stream given up (a rejoin failed) delivers nothing: its staged
// messages are dropped with it and the next stream resumes from the
// positions before it, so a message it queued, even once every rejoin has
// replied, would skip those staged before it without a Gap (and move the
// room's position past them). Such a stream is read to its end, gRPC
// handing over what it buffered before the cancel.
func (s *Subscription) received(c *conn, msgs []*Event, byNext bool) {
	if len(msgs) == 0 {
		return
	}
	s.mu.Lock()
	for _, ev := range msgs {
		switch {
		case c.fatal != nil || c.retry != nil:
			// Given up: dropped, as what it staged is.
		case !c.ready: // rejoining
			c.staged = append(c.staged, ev)
			c.rateWait.stagedBytes += payloadSize(ev.Message)
		default:
			s.pushMessage(ev)
		}
	}
	if c.rejoining > 0 && c.fatal == nil && c.retry == nil && c.overStaged() {
		c.giveUp(status.Errorf(codes.ResourceExhausted, "rejoining held %d messages, %d bytes of payload: too many to wait for the command rate", len(c.staged), c.rateWait.stagedBytes))
	}
	wake := !byNext || s.others > 0
	s.mu.Unlock()
	if wake {
		notify(s.arrived)
	}
}

// replied hands a command's reply to whoever waits for it.
func (s *Subscription) replied(c *conn, r *roomcastv1.CommandReply) {
	var undo *roomcastv1.SubscribeRequest // a leave of a room joined after it was left
	s.mu.Lock()
	p := c.pending[r.GetId()]
	delete(c.pending, r.GetId())
	switch {
	case p == nil: // not ours, or of a stream the subscription gave up on
	case p.kind == cmdJoin:
		var again bool
		if s.rooms[p.room.name] == p.room {
			again = s.joinReplied(c, p.room, r)
		} else {
			undo = s.leftSince(c, p, r)
		}
		if p.resent {
			c.rateWait.inFlight = false
		}
		if p.rejoin && !again {
			s.rejoinDone(c)
		}
		s.resendNext(c, r.GetError())
	default:
		if p.kind == cmdRefresh {
			s.revoke(r.GetRefresh().GetLeftRooms())
		}
		p.reply <- r // 1-buffered and used once: never blocks
	}
	s.mu.Unlock()
	if undo != nil {
		// Not sent by the reader, which the server may wait for to take
		// its writes before it reads the command. ended waits for it.
		c.sending.Add(1)
		go func() {
			defer c.sending.Done()
			c.send(undo) // if the stream is gone, so is the room
		}()
	}
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

// rejoinDone counts a room's rejoin as replied to, for good. Caller holds
// mu.
func (s *Subscription) rejoinDone(c *conn) {
	if c.rejoining--; c.rejoining == 0 && c.fatal == nil && c.retry == nil {
		s.rejoinedAll(c)
	}
}

// joinReplied applies the reply to a join of st, still a room of the
// subscription, on c. It reports whether the join, a rejoin the command
// rate refused, waits to be sent again (see retryLater). Caller holds mu.
func (s *Subscription) joinReplied(c *conn, st *roomState, r *roomcastv1.CommandReply) (again bool) {
	op := "join " + strconv.Quote(st.name)
	if e := r.GetError(); e != nil {
		err := replyError(op, e)
		if !st.joined { // the first join: its caller learns why
			s.remove(st)
			if st.waiter != nil {
				st.waiter <- joinOutcome{err: err}
				st.waiter = nil
			}
			return false
		}
		if s.retryLater(c, st, e) {
			return true
		}
		// A room the subscription was in cannot be joined again.
		c.giveUp(err)
		return false
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
		return false
	}
	// A rejoin: applied once every room is rejoined, so that a stream lost
	// before then resumes from the same positions.
	out := rejoined{rejoin: Rejoin{Room: st.name, Recovered: j.GetRecovered(), From: st.pos, Resumed: st.pos}, resumed: st.pos}
	if !out.rejoin.Recovered {
		out.rejoin.Resumed, out.resumed = now, now
	}
	if c.rejoined == nil {
		c.rejoined = make(map[*roomState]rejoined)
	}
	c.rejoined[st] = out
	return false
}

// rejoinedAll queues, once every room is joined on a new stream, the
// Reconnected event, a Gap for each room that did not recover, and what the
// stream delivered meanwhile. Caller holds mu.
func (s *Subscription) rejoinedAll(c *conn) {
	c.ready = true
	rc := c.reconnect
	rc.Downtime = time.Since(c.lostAt)
	var gaps []*Event
	for _, name := range s.order { // rooms left since are not in it
		st := s.rooms[name]
		out, ok := c.rejoined[st]
		if !ok {
			continue // joined since: its join applied itself
		}
		st.pos = out.resumed
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
	c.staged, c.rejoined, c.reconnect, c.rateWait.stagedBytes = nil, nil, nil, 0
}
