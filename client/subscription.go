package client

import (
	"context"
	"errors"
	"iter"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A Subscription stops reading its stream while it holds this many received
// messages, or messages with this many bytes of payload, for its reader.
const (
	queueMessages = 256
	queueBytes    = 4 << 20
)

type subscribeStream = grpc.BidiStreamingClient[roomcastv1.SubscribeRequest, roomcastv1.SubscribeResponse]

// Subscription is a session in zero or more rooms that outlives the streams
// it runs on: it delivers every message published to its rooms after it
// joined them, in order, exactly once, reconnecting and rejoining its rooms
// whenever a stream is lost (see the package documentation).
//
// All its methods are safe for concurrent use. One goroutine of its own,
// its receiver, runs it: it reads the current stream, handing each
// command's reply to the Join or Leave waiting for it and queueing events
// in the order they arrive, and once the stream ends it opens a new one
// and rejoins the rooms. It runs only while it has something to do: while
// a Next keeps the stream (see below), or the queue is full, no goroutine
// of the subscription's runs. (grpc-go runs one per stream, which watches
// the stream's context; a credential refresh runs on a goroutine of its
// own only while it runs.) Events and Next take events from the queue, each
// event going to one caller, so read them from one goroutine. A Next whose
// context ends only with the subscription (the one given to Subscribe, or
// one never done, as Events uses) reads the stream itself when the queue
// is empty, which spares every message a hand-off between goroutines, and
// keeps it until it is called again; the receiver takes it back
// whenever a command waits for its reply, the stream ends, or a Next with
// another context waits.
//
// The queue holds up to 256 messages or 4 MiB of payload. While it is full,
// or while nobody calls a Next that keeps the stream, the subscription stops
// reading, so a reader that falls behind holds the server's writes up once
// the stream's HTTP/2 window (1 MiB unless WithDialOptions sets another)
// is full; the server cuts such a stream off (codes.ResourceExhausted), and
// the subscription reconnects and resumes after the last message it
// received, which succeeds while the server still retains what it missed.
// Join and Leave get their reply even while the queue is full: the
// subscription reads past it while a command waits.
//
// Close the subscription when done with it, or close its Client, or cancel
// the context given to Subscribe: each ends its goroutine.
type Subscription struct {
	c    *Client
	ctx  context.Context    // the caller's: when it is done, the subscription ends
	sctx context.Context    // done when ctx is or on Close
	stop context.CancelFunc // cancels sctx
	ids  atomic.Uint64      // the last command id used

	mu      sync.Mutex
	closed  bool                  // Close was called
	err     error                 // why the subscription ended; nil while it goes on
	conn    *conn                 // the current stream; nil while reconnecting
	session string                // the current stream's session id
	rooms   map[string]*roomState // the rooms it is in or joining
	order   []string              // the same rooms, in the order they were joined
	last    *roomState            // the room of the last message looked up while it is in rooms: most messages are of the room before
	queue   []*Event              // from qhead on: delivered to the reader, not yet taken
	qhead   int                   // the first event of queue not yet taken
	qbytes  int                   // payload bytes of the messages in queue
	waiting int                   // Next calls waiting to read the stream themselves
	others  int                   // Next calls waiting for the receiver to read
	parked  *conn                 // the stream the receiver parked on, until wake starts it again
	starts  atomic.Uint64         // receivers wake started again (tests read it)
	resent  atomic.Uint64         // rejoins sent again after a refusal for the rate (tests read it)

	arrived chan struct{} // 1-buffered: events were queued
	space   chan struct{} // 1-buffered: the queue shrank or a command was sent
	done    chan struct{} // closed once the subscription has ended and its receiver returned (a wake-up of a stream's end may still be returning)
}

// roomState is a room of the subscription. Guarded by Subscription.mu.
type roomState struct {
	name   string
	joined bool             // a join succeeded: pos is where delivery stands
	pos    Position         // the last message queued, or the position joined at
	after  *Position        // until joined: the position to join from (nil: live)
	waiter chan joinOutcome // the Join waiting for the first join, if any; 1-buffered
}

type joinOutcome struct {
	res JoinResult
	err error
}

// Subscribe opens a session and joins rooms, in order, waiting for each
// join's reply; use Join with ResumeAfter to join from a position. The
// subscription then delivers every message published to those rooms after
// its join.
//
// ctx bounds the whole subscription, not just this call: when it is done the
// subscription ends and Err reports ctx's error. The first stream is not
// retried: if it cannot be opened, Subscribe returns the error (with
// codes.Unavailable for an unreachable server); streams lost later are
// replaced. If a join fails, Subscribe closes the subscription and returns
// the error the server replied with: status.Code(err) is its gRPC code
// (codes.InvalidArgument for a bad room name, codes.PermissionDenied
// outside the credential's grants, codes.ResourceExhausted past the server's
// rooms per session) and status.FromError(err) its message. After Close of
// the client it returns ErrClosed.
func (c *Client) Subscribe(ctx context.Context, rooms ...string) (*Subscription, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	sctx, stop := context.WithCancel(ctx)
	s := &Subscription{
		c:       c,
		ctx:     ctx,
		sctx:    sctx,
		stop:    stop,
		rooms:   make(map[string]*roomState),
		arrived: make(chan struct{}, 1),
		space:   make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	first, err := s.connect()
	if err != nil {
		stop()
		if c.isClosed() {
			return nil, ErrClosed
		}
		return nil, rpcError(ctx, "subscribe", err, kindCall)
	}
	first.ready = true
	s.conn, s.session = first, first.session
	go s.run(first)
	if !c.track(s) {
		s.Close()
		return nil, ErrClosed
	}
	for _, room := range rooms {
		if _, err := s.Join(ctx, room); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// open starts a Subscribe stream and reads the session event it begins with.
func (c *Client) open(ctx context.Context) (subscribeStream, *roomcastv1.SessionEvent, error) {
	stream, err := c.rpc.Subscribe(ctx, grpc.ForceCodecV2(subscribeCodec))
	if err != nil {
		return nil, nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, nil, err
	}
	session := resp.GetSession()
	if session.GetSessionId() == "" {
		return nil, nil, status.Errorf(codes.Internal, "the stream began with %v, not a session event", resp)
	}
	return stream, session, nil
}

// SessionID returns the id the server gave the current stream's session; it
// changes when the subscription reconnects (Reconnected.Session). Pass it to
// WithExcludeSession to publish to everyone but this subscription, or to
// WithSession to name it as the publisher.
func (s *Subscription) SessionID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.session
}

// Rooms returns the rooms the subscription is in or joining, in the order
// they were joined: the rooms it joins again when it reconnects.
func (s *Subscription) Rooms() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.order)
}

// Join adds room to the subscription and returns the outcome: the room's
// offset and epoch at the join, and with ResumeAfter whether every message
// after that position is delivered. Every message published after the join
// is delivered, and the room is joined again on every new stream.
//
// If the stream is lost before the join is answered, Join waits for the
// subscription to reconnect and join the room on the new stream. A failed
// join leaves the subscription up, without the room; its error has the
// server's gRPC code (status.Code) and matches ErrAlreadyJoined when the
// subscription is already in room, ErrPermissionDenied outside the
// credential's grants, ErrInvalidArgument for a bad room name. If ctx is
// done first, Join returns an error matching ctx's error but the join goes
// on: the room stays in the subscription (Leave it to undo), and a gap it
// finds is delivered as a Gap event. After the subscription ends, Join
// returns Err(); after Close, ErrClosed.
func (s *Subscription) Join(ctx context.Context, room string, opts ...JoinOption) (JoinResult, error) {
	op := "join " + strconv.Quote(room)
	var jc joinConfig
	for _, o := range opts {
		o(&jc)
	}
	if !utf8.ValidString(room) {
		// It could not be marshaled, and a failed Send would end the stream.
		return JoinResult{}, localError(op, codes.InvalidArgument, "room name is not valid UTF-8", kindCommand)
	}
	if ctx.Err() != nil {
		return JoinResult{}, contextError(ctx, op)
	}
	waiter := make(chan joinOutcome, 1)
	st := &roomState{name: room, after: jc.after, waiter: waiter}
	s.mu.Lock()
	if err := s.stateErr(); err != nil {
		s.mu.Unlock()
		return JoinResult{}, err
	}
	if s.rooms[room] != nil {
		s.mu.Unlock()
		return JoinResult{}, localError(op, codes.AlreadyExists, "room already joined on this subscription", kindCommand)
	}
	s.rooms[room] = st
	s.order = append(s.order, room)
	// Without a stream, the next one joins it with the others.
	c := s.conn
	var req *roomcastv1.SubscribeRequest
	if c != nil {
		req = s.register(c, &pending{kind: cmdJoin, room: st}, joinCommand(st))
	}
	s.mu.Unlock()
	if req != nil {
		s.wake()    // the receiver reads past a full queue until the reply comes
		c.send(req) // if the stream is gone, the next one joins the room
	}

	select {
	case out := <-waiter:
		return out.res, out.err
	case <-s.done:
		select {
		case out := <-waiter: // it came just before the end
			return out.res, out.err
		default:
			return JoinResult{}, s.Err()
		}
	case <-ctx.Done():
		s.mu.Lock()
		if st.waiter == waiter {
			st.waiter = nil // a gap is now an event
		}
		s.mu.Unlock()
		select {
		case out := <-waiter:
			return out.res, out.err
		default:
			return JoinResult{}, contextError(ctx, op)
		}
	}
}

// joinCommand is the join of st on a new stream: from the position of the
// last message received, or for a first join from the position asked for.
// Caller holds mu.
func joinCommand(st *roomState) *roomcastv1.SubscribeRequest {
	join := &roomcastv1.JoinCommand{Room: st.name}
	switch {
	case st.joined:
		join.Position = &roomcastv1.Position{Offset: st.pos.Offset, Epoch: st.pos.Epoch}
	case st.after != nil:
		join.Position = &roomcastv1.Position{Offset: st.after.Offset, Epoch: st.after.Epoch}
	}
	return &roomcastv1.SubscribeRequest{Command: &roomcastv1.SubscribeRequest_Join{Join: join}}
}

// Leave removes room from the subscription: no message of the room is
// queued after Leave is called (messages already queued are still
// delivered), and the room is not joined again on a new stream. A Join of
// the room still waiting fails. While the room's join (or its rejoin on a
// new stream) waits for its reply, Leave waits for it, and leaves the room
// on the server if the join went through; a rejoin waiting to be sent
// again for the command rate is not sent, and Leave returns at once. The
// room is removed even if the server's reply is an error, which Leave
// returns with its gRPC code: ResourceExhausted, past the command rate,
// means the stream is still in the room on the server, and calling Leave
// again (after the error's retry delay) leaves it there. Leaving a room the
// subscription is not in fails with an error matching ErrNotJoined (or
// ErrInvalidArgument for a bad room name). After the subscription ends,
// Leave returns Err(); after Close, ErrClosed.
func (s *Subscription) Leave(ctx context.Context, room string) error {
	op := "leave " + strconv.Quote(room)
	if !utf8.ValidString(room) {
		return localError(op, codes.InvalidArgument, "room name is not valid UTF-8", kindCommand)
	}
	if ctx.Err() != nil {
		return contextError(ctx, op)
	}
	s.mu.Lock()
	if err := s.stateErr(); err != nil {
		s.mu.Unlock()
		return err
	}
	c := s.conn
	st := s.rooms[room]
	if st != nil {
		s.remove(st)
		if st.waiter != nil {
			st.waiter <- joinOutcome{err: localError("join "+strconv.Quote(room), codes.Aborted, "the room was left before the join completed", kindCommand)}
			st.waiter = nil
		}
		if c == nil {
			s.mu.Unlock()
			return nil // no stream is in the room, and the next one will not join it
		}
		if s.unqueue(c, st) {
			s.mu.Unlock()
			notify(s.arrived) // the rejoin may be done
			return nil        // its rejoin, refused for the rate, waited to be sent again
		}
	} else if c == nil {
		s.mu.Unlock()
		return localError(op, codes.NotFound, "room not joined on this subscription", kindCommand)
	}
	// If the subscription is not in the room, the server's reply says why:
	// a bad name, or not joined.
	p := &pending{kind: cmdLeave, reply: make(chan *roomcastv1.CommandReply, 1)}
	var req *roomcastv1.SubscribeRequest
	if j := c.joinPending(st); j != nil {
		j.leave = p.reply // its reply undoes the join if it went through (see leftSince)
	} else {
		req = s.register(c, p, leaveCommand(room))
	}
	s.mu.Unlock()
	s.wake()
	gone := func() error { // the stream is gone, and the room with it
		s.mu.Lock()
		err := s.stateErr() // Close, or the subscription's end, says so
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if st == nil {
			return localError(op, codes.NotFound, "room not joined on this subscription", kindCommand)
		}
		return nil
	}
	if req != nil && c.send(req) != nil {
		return gone()
	}
	select {
	case r := <-p.reply:
		if e := r.GetError(); e != nil {
			return replyError(op, e)
		}
		return nil
	case <-c.done:
		return gone()
	case <-ctx.Done():
		return contextError(ctx, op)
	}
}

// remove takes st out of the subscription's rooms. Caller holds mu.
func (s *Subscription) remove(st *roomState) {
	delete(s.rooms, st.name)
	if s.last == st {
		s.last = nil
	}
	if i := slices.Index(s.order, st.name); i >= 0 {
		s.order = slices.Delete(s.order, i, i+1)
	}
}

// register gives req a fresh id and records p as waiting for its reply on
// c. Caller holds mu.
func (s *Subscription) register(c *conn, p *pending, req *roomcastv1.SubscribeRequest) *roomcastv1.SubscribeRequest {
	req.Id = strconv.FormatUint(s.ids.Add(1), 10)
	c.pending[req.Id] = p
	return req
}

// Next returns the next event, waiting for one until ctx is done (it then
// returns ctx's error and the subscription goes on). Once the subscription
// has ended and every event queued before has been returned, it returns
// Err(); after Close, ErrClosed.
//
// When ctx cannot end before the subscription does (ctx is the one given
// to Subscribe, or one that is never done, as Events uses), Next reads the
// stream itself while no command waits for its reply, instead of waiting
// for the subscription's receiver to hand it what it read. It then keeps
// the stream to itself until the next call, so that between calls the
// messages wait in the stream's HTTP/2 window rather than in the queue.
func (s *Subscription) Next(ctx context.Context) (*Event, error) {
	done := ctx.Done()
	own := done == nil || done == s.ctx.Done() // ctx ends only with the stream
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if s.queued() > 0 {
			high := !s.lowWater()
			ev := s.pop()
			drained := high && s.lowWater() // the receiver, parked for room, may read again
			more := s.queued() > 0
			s.mu.Unlock()
			if drained {
				s.wake()
			}
			if more {
				notify(s.arrived) // for another waiting caller
			}
			return ev, nil
		}
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return nil, err
		}
		c := s.conn
		if own && s.readable(c) {
			c.turn = turnNext
			s.mu.Unlock()
			s.nextRead(c)
			continue
		}
		if own {
			s.waiting++ // the receiver leaves the stream to this call
		} else {
			s.others++ // the receiver reads for this call
			if c != nil && c.turn == turnLeased {
				c.turn = turnFree
			}
		}
		s.mu.Unlock()
		if !own {
			s.wake()
		}
		err := s.wait(ctx)
		s.mu.Lock()
		if own {
			s.waiting--
		} else {
			s.others--
		}
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
}

// wait waits for an event to be queued, the subscription to end, or ctx.
func (s *Subscription) wait(ctx context.Context) error {
	select {
	case <-s.arrived:
	case <-s.done:
	case <-ctx.Done():
		return contextError(ctx, "next event")
	}
	return nil
}

// Events returns an iterator over the subscription's events, for use with
// range:
//
//	for ev, err := range sub.Events() {
//		if err != nil {
//			return err
//		}
//		...
//	}
//
// It yields (ev, nil) for each event, in the order Next returns them,
// blocking until the next one arrives. When the subscription ends it yields
// (nil, err) once, err being Err(), and stops; after Close it stops without
// an error. Breaking out of the loop leaves the subscription open, and a
// later range goes on with the next event. To stop waiting, Close the
// subscription or cancel the ctx given to Subscribe.
func (s *Subscription) Events() iter.Seq2[*Event, error] {
	return func(yield func(*Event, error) bool) {
		for {
			ev, err := s.Next(context.Background())
			if errors.Is(err, ErrClosed) {
				return
			}
			if !yield(ev, err) || err != nil {
				return
			}
		}
	}
}

// Err returns nil while the subscription goes on (reconnecting included)
// and, once it has ended, why: ErrClosed if Close ended it; an error
// matching the error of the ctx given to Subscribe (errors.Is(err,
// context.Canceled), say) if that ctx ended it; otherwise a permanent error
// from the server, which matches ErrUnauthenticated (the credential expired
// or was refused on a reconnect), ErrPermissionDenied (a room was refused on
// a reconnect) or ErrInvalidArgument, and whose gRPC code status.Code(err)
// reports.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription, leaving every room, and waits for its
// goroutines to return. Waiting Join, Leave and Next calls return
// ErrClosed, as do later ones; events not yet taken are dropped. Close is
// idempotent and returns nil.
func (s *Subscription) Close() error {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.queue, s.qhead, s.qbytes = nil, 0, 0
	s.mu.Unlock()
	s.stop()
	<-s.done
	if !already {
		s.c.forget(s)
	}
	return nil
}

// stateErr is why no command can be sent: ErrClosed after Close, the reason
// the subscription ended, or nil. Caller holds mu.
func (s *Subscription) stateErr() error {
	if s.closed {
		return ErrClosed
	}
	return s.err
}

// notify sends on a 1-buffered signal channel without blocking.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
