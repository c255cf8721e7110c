package client

import (
	"context"
	"errors"
	"io"
	"iter"
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

// Subscription is one Subscribe stream: a session on the server, in zero or
// more rooms, receiving every message published to them after it joined.
//
// All its methods are safe for concurrent use. One goroutine of its own reads
// the stream: it hands each command's reply to the Join or Leave waiting for
// it (matched by command id) and queues messages in the order they arrive,
// which is offset order within each room. Messages and Next take messages
// from that queue, each message going to one caller, so read them from one
// goroutine.
//
// The queue holds up to 256 messages or 4 MiB of payload. While it is full
// the subscription stops reading, so a reader that falls behind holds the
// server's writes up; the server ends such a stream with
// codes.ResourceExhausted, as it does for any subscriber that falls further
// behind than its backlog limit or does not take a write within its write
// timeout. The reader still gets the messages received before the end, then
// the error. Join and Leave get their reply even while the queue is full:
// the subscription reads past it while a command waits.
//
// Close the subscription when done with it, or close its Client.
type Subscription struct {
	c       *Client
	ctx     context.Context    // the caller's: when it is done, the stream ends
	sctx    context.Context    // the stream's: done when ctx is or on Close
	stop    context.CancelFunc // cancels sctx, ending the stream
	stream  subscribeStream
	session string
	ids     atomic.Uint64 // the last command id used

	sendMu sync.Mutex // serializes Send

	mu      sync.Mutex
	closed  bool                                     // Close was called
	err     error                                    // why the stream ended; nil while it is up
	pending map[string]chan *roomcastv1.CommandReply // commands waiting for their reply, by id
	queue   []*Message                               // received, not yet taken
	qbytes  int                                      // payload bytes in queue

	arrived chan struct{} // 1-buffered: messages were queued
	space   chan struct{} // 1-buffered: the queue shrank or a command was sent
	done    chan struct{} // closed once the receiving goroutine has set err and returned
}

// Subscribe opens a session and joins rooms, in order, waiting for each
// join's reply. The subscription then receives every message published to
// those rooms after its join.
//
// ctx bounds the whole subscription, not just this call: when it is done the
// stream ends and Err reports ctx's error. If a join fails, Subscribe closes
// the stream and returns the error the server replied with: status.Code(err)
// is its gRPC code (codes.InvalidArgument for a bad room name,
// codes.ResourceExhausted past the server's rooms per session) and
// status.FromError(err) its message. After Close of the client it returns
// ErrClosed.
func (c *Client) Subscribe(ctx context.Context, rooms ...string) (*Subscription, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	sctx, stop := context.WithCancel(ctx)
	stream, first, err := c.open(sctx)
	if err != nil {
		stop()
		if c.isClosed() {
			return nil, ErrClosed
		}
		return nil, rpcError(ctx, "subscribe", err)
	}
	s := &Subscription{
		c:       c,
		ctx:     ctx,
		sctx:    sctx,
		stop:    stop,
		stream:  stream,
		session: first.GetSessionId(),
		pending: make(map[string]chan *roomcastv1.CommandReply),
		arrived: make(chan struct{}, 1),
		space:   make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	go s.receive()
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
	stream, err := c.rpc.Subscribe(ctx)
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

// SessionID returns the id the server gave this session. Pass it to
// WithExcludeSession to publish to everyone but this subscription, or to
// WithSession to name it as the publisher.
func (s *Subscription) SessionID() string { return s.session }

// Join adds room to the subscription and returns the room's offset at the
// join: the offset of the last message published to it before, 0 if none.
// Every message published after the join is delivered.
//
// A failed join leaves the stream up; its error has the server's gRPC code
// (status.Code) and matches ErrAlreadyJoined when the subscription is
// already in room. If ctx is done first, Join returns an error matching
// ctx's error, but the server may still carry the join out. After the stream
// ends, Join returns Err(); after Close, ErrClosed.
func (s *Subscription) Join(ctx context.Context, room string) (uint64, error) {
	op := "join " + strconv.Quote(room)
	r, err := s.command(ctx, op, room, &roomcastv1.SubscribeRequest{
		Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: room}},
	})
	if err != nil {
		return 0, err
	}
	return r.GetJoin().GetOffset(), nil
}

// Leave removes room from the subscription: no message of the room is
// received after Leave returns (messages already queued are still
// delivered). Its errors are like Join's; it matches ErrNotJoined when the
// subscription is not in room.
func (s *Subscription) Leave(ctx context.Context, room string) error {
	op := "leave " + strconv.Quote(room)
	_, err := s.command(ctx, op, room, &roomcastv1.SubscribeRequest{
		Command: &roomcastv1.SubscribeRequest_Leave{Leave: &roomcastv1.LeaveCommand{Room: room}},
	})
	return err
}

// command sends req with a fresh id and waits for the reply with that id.
func (s *Subscription) command(ctx context.Context, op, room string, req *roomcastv1.SubscribeRequest) (*roomcastv1.CommandReply, error) {
	if !utf8.ValidString(room) {
		// It could not be marshaled, and a failed Send would end the stream.
		return nil, &opError{op: op, cause: status.Error(codes.InvalidArgument, "room name is not valid UTF-8")}
	}
	if ctx.Err() != nil {
		return nil, contextError(ctx, op)
	}
	req.Id = strconv.FormatUint(s.ids.Add(1), 10)
	reply := make(chan *roomcastv1.CommandReply, 1)
	s.mu.Lock()
	if err := s.stateErr(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.pending[req.Id] = reply
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, req.Id)
		s.mu.Unlock()
	}()
	notify(s.space) // the receiver reads past a full queue until the reply comes

	s.sendMu.Lock()
	err := s.stream.Send(req)
	s.sendMu.Unlock()
	if err != nil {
		// The stream is gone; the receiver learns why from Recv.
		select {
		case <-s.done:
			return nil, s.Err()
		case <-ctx.Done():
			return nil, contextError(ctx, op)
		}
	}

	select {
	case r := <-reply:
		return replyResult(op, r)
	case <-s.done:
		select {
		case r := <-reply: // it came just before the end
			return replyResult(op, r)
		default:
			return nil, s.Err()
		}
	case <-ctx.Done():
		return nil, contextError(ctx, op)
	}
}

func replyResult(op string, r *roomcastv1.CommandReply) (*roomcastv1.CommandReply, error) {
	if e := r.GetError(); e != nil {
		return nil, replyError(op, e)
	}
	return r, nil
}

// Next returns the next message, waiting for one until ctx is done (it then
// returns ctx's error and the subscription goes on). Once the stream has
// ended and every message received before has been returned, it returns
// Err(); after Close, ErrClosed.
func (s *Subscription) Next(ctx context.Context) (*Message, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if len(s.queue) > 0 {
			m := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			s.qbytes -= payloadSize(m)
			more := len(s.queue) > 0
			s.mu.Unlock()
			notify(s.space)
			if more {
				notify(s.arrived) // for another waiting caller
			}
			return m, nil
		}
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return nil, err
		}
		s.mu.Unlock()
		select {
		case <-s.arrived:
		case <-s.done:
		case <-ctx.Done():
			return nil, contextError(ctx, "next message")
		}
	}
}

// Messages returns an iterator over the subscription's messages, for use
// with range:
//
//	for msg, err := range sub.Messages() {
//		if err != nil {
//			return err
//		}
//		...
//	}
//
// It yields (msg, nil) for each message, in the order Next returns them,
// blocking until the next one arrives. When the stream ends it yields
// (nil, err) once, err being Err(), and stops; after Close it stops without
// an error. Breaking out of the loop leaves the subscription open, and a
// later range goes on with the next message. To stop waiting, Close the
// subscription or cancel the ctx given to Subscribe.
func (s *Subscription) Messages() iter.Seq2[*Message, error] {
	return func(yield func(*Message, error) bool) {
		for {
			m, err := s.Next(context.Background())
			if errors.Is(err, ErrClosed) {
				return
			}
			if !yield(m, err) || err != nil {
				return
			}
		}
	}
}

// Err returns nil while the stream is up and, once it has ended, why:
// ErrClosed if Close ended it; an error matching the error of the ctx given
// to Subscribe (errors.Is(err, context.Canceled), say) if that ctx ended it;
// otherwise the server's status, which status.Code(err) reports:
// codes.Unavailable when the server shuts down, codes.ResourceExhausted when
// the subscription fell further behind than the server's backlog limit.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the stream, leaving every room, and waits for the
// subscription's goroutine to return. Waiting Join, Leave and Next calls
// return ErrClosed, as do later ones; messages not yet taken are dropped.
// Close is idempotent and returns nil.
func (s *Subscription) Close() error {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.queue, s.qbytes = nil, 0
	s.mu.Unlock()
	s.stop()
	<-s.done
	if !already {
		s.c.forget(s)
	}
	return nil
}

// stateErr is why no command can be sent: ErrClosed after Close, the reason
// the stream ended, or nil. Caller holds mu.
func (s *Subscription) stateErr() error {
	if s.closed {
		return ErrClosed
	}
	return s.err
}

// receive is the only reader of the stream. It runs until the stream ends.
func (s *Subscription) receive() {
	defer close(s.done)
	for {
		s.waitForSpace()
		resp, err := s.stream.Recv()
		if err != nil {
			s.end(err)
			return
		}
		switch ev := resp.GetEvent().(type) {
		case *roomcastv1.SubscribeResponse_Reply:
			s.mu.Lock()
			reply := s.pending[ev.Reply.GetId()]
			delete(s.pending, ev.Reply.GetId())
			s.mu.Unlock()
			if reply != nil { // nil when its caller gave up waiting
				reply <- ev.Reply // 1-buffered and used once: never blocks
			}
		case *roomcastv1.SubscribeResponse_Batch:
			if msgs := ev.Batch.GetMessages(); len(msgs) > 0 {
				s.mu.Lock()
				if !s.closed {
					s.queue = append(s.queue, msgs...)
					for _, m := range msgs {
						s.qbytes += payloadSize(m)
					}
				}
				s.mu.Unlock()
				notify(s.arrived)
			}
		}
		// Anything else (a repeated session event, an event a later server
		// adds) is ignored.
	}
}

// waitForSpace returns once the queue has room for more messages, a command
// waits for its reply, or the stream is ending.
func (s *Subscription) waitForSpace() {
	for {
		s.mu.Lock()
		ok := len(s.queue) < queueMessages && s.qbytes < queueBytes || len(s.pending) > 0
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.space:
		case <-s.sctx.Done():
			return
		}
	}
}

// end records why the stream ended, given the error Recv returned.
func (s *Subscription) end(recvErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		s.err = ErrClosed
	case s.ctx.Err() != nil:
		s.err = contextError(s.ctx, "subscription ended")
	case errors.Is(recvErr, io.EOF):
		s.err = &opError{op: "subscription ended", cause: errors.New("the server ended the stream without an error")}
	default:
		s.err = &opError{op: "subscription ended", cause: recvErr}
	}
}

func payloadSize(m *Message) int { return len(m.GetData()) + len(m.GetText()) }

// notify sends on a 1-buffered signal channel without blocking.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
