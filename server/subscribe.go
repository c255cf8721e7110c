package server

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

type subscribeStream = grpc.BidiStreamingServer[roomcastv1.SubscribeRequest, roomcastv1.SubscribeResponse]

// commandsPerWake bounds the commands handled in one turn, so a stream of
// commands cannot starve the stream's messages or its connection's other
// streams.
const commandsPerWake = 16

// session is one Subscribe stream. Two goroutines of its own: the handler
// waits for the end and returns the status, and the reader decodes commands.
// Everything else (commands, collecting messages, every Send) happens in
// turns on its connection's writer (see conn.go), which owns the subscriber
// while it serves the session. The handler alone can end a stream whose Send
// is blocked because the client stopped reading, since returning cancels
// the stream and so unblocks Send.
type session struct {
	srv     *Server
	id      string
	stream  subscribeStream
	conn    *outConn
	sub     *broker.Subscriber
	cmds    chan *roomcastv1.SubscribeRequest
	pending atomic.Int32 // commands in cmds, read without touching the channel
	end     chan error   // the first reason to end the stream; see endWith
	stalled atomic.Bool  // cut off by the sweeper for a write past the write timeout

	// Scheduling, guarded by mu: a session is at most once in its
	// connection's ready list, and served by at most one writer at a time.
	mu      sync.Mutex
	queued  bool        // in the ready list
	running bool        // a writer is serving it
	again   bool        // woken while running: serve it again
	closed  bool        // ended: never served again; the subscriber is closed by whoever holds it
	expiry  *time.Timer // ends the stream when its credential expires; nil while it does not

	// Owned by the writer serving the session.
	greeted  bool
	out      frame // the frame being sent: SendMsg does not keep it
	identity *auth.Identity
	commands *rate.Limiter // nil: no limit

	state     atomic.Int32 // idle, sending or stopped
	sendSince atomic.Int64 // the sweeper's tick when the current Send began; 0 when not sending
}

// Session states: a writer moves the session between idle and sending; the
// handler moves it to stopped, after which no Send starts.
const (
	idle int32 = iota
	sending
	stopped
)

var errStopped = errors.New("session stopped")

// Subscribe implements BrokerService.Subscribe.
func (s *Server) Subscribe(stream subscribeStream) error {
	if s.isDraining() {
		return status.Error(codes.Unavailable, "server is shutting down; reconnect to another instance")
	}
	if n := s.streams.Add(1); n > int64(s.cfg.maxTotalStreams) {
		s.streams.Add(-1)
		return status.Errorf(codes.ResourceExhausted, "the server has %d subscriber streams, its limit; retry later or on another instance", s.cfg.maxTotalStreams)
	}
	defer s.streams.Add(-1)
	id := newSessionID()
	ss := &session{
		srv:    s,
		id:     id,
		stream: stream,
		conn:   s.connOf(stream.Context()),
		cmds:   make(chan *roomcastv1.SubscribeRequest, commandsPerWake),
		end:    make(chan error, 1),

		identity: s.access.identity(stream.Context()),
		commands: s.cfg.commandLimiter(),
	}
	ss.sub = s.broker.NewNotifiedSubscriber(id, ss.wake)
	s.access.addSession(stream.Context(), id, ss.identity, ss.endWith)
	defer s.access.removeSession(id)
	ss.setExpiry(ss.identity.Expiry)
	s.live.Store(ss, struct{}{})
	defer s.live.Delete(ss)
	s.goroutines.Add(1)
	go ss.read()
	ss.wake() // its first turn greets the client
	return ss.wait()
}

// wait returns the status the stream ends with. A drain is a turn's to
// notice, once the session has sent what it holds; the shutdown deadline
// cancels the stream if it cannot. One channel and the stream's context are
// all it waits on: an idle stream's memory is mostly its two goroutines.
func (ss *session) wait() error {
	var err error
	select {
	case err = <-ss.end:
	case <-ss.stream.Context().Done():
		err = status.FromContextError(ss.stream.Context().Err()).Err()
	}
	// A Send under way is cancelled by returning; none starts after this.
	ss.state.Store(stopped)
	ss.close()
	return err
}

// endWith ends the stream with err, unless it is already ending. It may be
// called from any goroutine.
func (ss *session) endWith(err error) {
	select {
	case ss.end <- err:
	default:
	}
}

// setExpiry makes the stream end when its credential expires at t; the zero
// t means never.
func (ss *session) setExpiry(t time.Time) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.expiry != nil {
		ss.expiry.Stop() // if it already fired, the stream is ending anyway
	}
	if t.IsZero() || ss.closed {
		return
	}
	if ss.expiry == nil {
		ss.expiry = time.AfterFunc(time.Until(t), func() {
			ss.endWith(status.Error(codes.Unauthenticated, "the stream's credential expired; send a refresh command before it does, or reconnect with a new one"))
		})
		return
	}
	ss.expiry.Reset(time.Until(t))
}

// wake gives the session a turn on its connection's writer, or another one
// if it is being served. It is the subscriber's notify function, so it runs
// under a room's lock and must not block.
func (ss *session) wake() {
	ss.mu.Lock()
	if ss.running {
		ss.again = true
		ss.mu.Unlock()
		return
	}
	if ss.queued || ss.closed {
		ss.mu.Unlock()
		return
	}
	ss.queued = true
	ss.mu.Unlock()
	ss.conn.push(ss)
}

// claim makes the calling writer the session's server; false if it ended.
func (ss *session) claim() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.queued = false
	if ss.closed {
		return false
	}
	ss.running, ss.again = true, false
	return true
}

// release ends a turn that reported more and err. It reports whether the
// writer should serve the session again at once, which only a retired writer
// does; a shared one queues it behind the connection's other sessions.
func (ss *session) release(more bool, err error, retired bool) bool {
	if err != nil {
		ss.endWith(err)
	}
	ss.mu.Lock()
	if err != nil || ss.closed {
		ss.closed, ss.running = true, false
		ss.mu.Unlock()
		ss.finish()
		return false
	}
	more = more || ss.again
	ss.again = false
	if more && retired {
		ss.mu.Unlock()
		return true
	}
	ss.running = false
	ss.queued = more
	ss.mu.Unlock()
	if more {
		ss.conn.push(ss)
	}
	return false
}

// close ends the session for the handler: nothing more is served, and the
// subscriber is closed now unless a writer holds it, which then will.
func (ss *session) close() {
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return
	}
	ss.closed = true
	held := ss.running
	if ss.expiry != nil {
		ss.expiry.Stop()
	}
	ss.mu.Unlock()
	if !held {
		ss.finish()
	}
}

// finish leaves the session's rooms and its connection, once.
func (ss *session) finish() {
	ss.sub.Close()
	ss.conn.unregister()
}

// read hands each command to the session's turns until the stream ends.
func (ss *session) read() {
	defer ss.srv.goroutines.Done()
	for {
		req := new(roomcastv1.SubscribeRequest)
		if err := ss.stream.RecvMsg(req); err != nil {
			// At io.EOF the client sent all its commands (grpcurl does so
			// when its input ends) but still listens: keep delivering.
			if err != io.EOF {
				ss.endWith(err)
			}
			return
		}
		select {
		case ss.cmds <- req:
			ss.pending.Add(1)
			ss.wake()
		case <-ss.stream.Context().Done():
			return
		}
	}
}

// send is the only way a turn calls SendMsg. It costs a few atomic
// operations: the write timeout and the shared writer's watch are kept by
// the server's sweeper, not by a timer per Send.
func (ss *session) send(w *connWriter, m any) error {
	if !ss.state.CompareAndSwap(idle, sending) {
		return errStopped
	}
	ss.sendSince.Store(ss.srv.tick.Load())
	w.since.Store(ss.srv.beat.Load())
	err := ss.stream.SendMsg(m)
	w.since.Store(0)
	ss.sendSince.Store(0)
	if !ss.state.CompareAndSwap(sending, idle) && err == nil {
		err = errStopped
	}
	return err
}

// stall ends the session as a slow consumer whose current Send has lasted
// longer than the write timeout.
func (ss *session) stall() {
	if !ss.stalled.CompareAndSwap(false, true) {
		return
	}
	ss.sub.Stalled()
	ss.srv.cfg.log.Info("slow consumer cut off", "session", ss.id, "reason", "write timeout")
	ss.endWith(status.Errorf(codes.ResourceExhausted, "slow consumer: one write took longer than %v; %s", ss.srv.cfg.writeTimeout, broker.FormatSent(ss.sub.Sent())))
}

// turn runs the session's pending commands, then sends one batch of what its
// rooms have for it. It reports whether the session has more to do at once;
// if not, the subscriber is parked and wakes the session when it does. An
// error ends the session with that status.
func (ss *session) turn(w *connWriter) (more bool, err error) {
	if !ss.greeted {
		ss.greeted = true
		if err := ss.send(w, &roomcastv1.SubscribeResponse{Event: &roomcastv1.SubscribeResponse_Session{
			Session: &roomcastv1.SessionEvent{SessionId: ss.id},
		}}); err != nil {
			return false, err
		}
	}
commands:
	for range commandsPerWake {
		if ss.pending.Load() == 0 {
			break commands
		}
		req := <-ss.cmds // the reader counts a command once it is in cmds
		ss.pending.Add(-1)
		if err := ss.handle(w, req); err != nil {
			return false, err
		}
	}
	ready, err := ss.collect()
	if err != nil {
		return false, err
	}
	if !ready {
		return ss.idle()
	}
	if err := ss.sendCollected(w); err != nil {
		return false, err
	}
	return ss.sent(), nil
}

// busy reports whether the session needs a whole turn: a greeting or
// commands, whose replies are sent before its messages.
func (ss *session) busy() bool { return !ss.greeted || ss.pending.Load() > 0 }

// collect takes what the session's rooms have for it into ss.out and
// reports whether there is anything to send; if not, idle ends the turn.
func (ss *session) collect() (ready bool, err error) {
	bufs, err := ss.sub.Collect(ss.srv.cfg.maxBatchBytes)
	if lag := (*broker.LagError)(nil); errors.As(err, &lag) {
		ss.srv.cfg.log.Info("slow consumer cut off", "session", ss.id, "room", lag.Room)
		return false, status.Error(codes.ResourceExhausted, lag.Error())
	} else if err != nil {
		return false, brokerStatus(err)
	}
	ss.out.bufs = bufs
	return bufs != nil, nil
}

// idle ends a turn that collected nothing: it parks the session, reporting
// whether it has more to do at once, or ends it in a drain. Only once idle:
// what was sequenced before the drain is sent first, so the offsets the
// status gives are complete.
func (ss *session) idle() (more bool, err error) {
	if ss.srv.isDraining() {
		return false, status.Errorf(codes.Unavailable, "server is shutting down; reconnect and resume; %s", broker.FormatSent(ss.sub.Sent()))
	}
	return ss.pending.Load() > 0 || !ss.sub.Park(), nil
}

// sendCollected sends what collect took.
func (ss *session) sendCollected(w *connWriter) error {
	err := ss.send(w, &ss.out)
	ss.out.bufs = nil
	if err == nil {
		ss.sub.Commit()
	}
	return err
}

// sent ends a turn that sent a batch, parking the session now rather than in
// a turn of its own, and reports whether it has more to do at once.
func (ss *session) sent() (more bool) {
	return ss.pending.Load() > 0 || ss.srv.isDraining() || !ss.sub.Park()
}

// handle runs one command and sends its reply. A command that fails gets an
// error reply; only a failure to send ends the stream.
func (ss *session) handle(w *connWriter, req *roomcastv1.SubscribeRequest) error {
	reply := &roomcastv1.CommandReply{Id: req.GetId()}
	if err := ss.execute(ss.stream.Context(), req, reply); err != nil {
		st := status.Convert(err)
		reply.Error = &roomcastv1.Error{Code: int32(st.Code()), Message: st.Message()}
		reply.Result = nil
	}
	return ss.send(w, &roomcastv1.SubscribeResponse{Event: &roomcastv1.SubscribeResponse_Reply{Reply: reply}})
}

func (ss *session) execute(ctx context.Context, req *roomcastv1.SubscribeRequest, reply *roomcastv1.CommandReply) error {
	if err := validateCommandID(req.GetId()); err != nil {
		reply.Id = ""
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if ss.commands != nil && !ss.commands.Allow() {
		return status.Errorf(codes.ResourceExhausted, "more than %v commands per second on this stream; slow down", ss.commands.Limit())
	}
	switch cmd := req.GetCommand().(type) {
	case *roomcastv1.SubscribeRequest_Join:
		room := cmd.Join.GetRoom()
		if err := broker.ValidateRoom(room); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if err := validateInfo(cmd.Join.GetInfo()); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if err := ss.srv.access.allow(ss.identity, auth.Subscribe, room); err != nil {
			return err
		}
		if cmd.Join.GetPresence() || cmd.Join.GetPresenceEvents() {
			if err := ss.srv.access.allow(ss.identity, auth.Presence, room); err != nil {
				return err
			}
		}
		if ss.sub.Rooms() >= ss.srv.cfg.maxRooms {
			return status.Errorf(codes.ResourceExhausted, "this stream is in %d rooms, the limit; leave one first", ss.sub.Rooms())
		}
		opts := broker.JoinOptions{Presence: cmd.Join.GetPresence(), Info: cmd.Join.GetInfo(), Events: cmd.Join.GetPresenceEvents()}
		if p := cmd.Join.GetPosition(); p != nil {
			opts.Position = &broker.Position{Offset: p.GetOffset(), Epoch: p.GetEpoch()}
		}
		res, err := ss.sub.Join(ctx, room, opts)
		if err != nil {
			return brokerStatus(err)
		}
		reply.Result = &roomcastv1.CommandReply_Join{Join: &roomcastv1.JoinResult{Room: room, Offset: res.Offset, Epoch: res.Epoch, Recovered: res.Recovered}}
	case *roomcastv1.SubscribeRequest_Leave:
		room := cmd.Leave.GetRoom()
		if err := broker.ValidateRoom(room); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if err := ss.sub.Leave(room); err != nil {
			return brokerStatus(err)
		}
		reply.Result = &roomcastv1.CommandReply_Leave{Leave: &roomcastv1.LeaveResult{Room: room}}
	case *roomcastv1.SubscribeRequest_Refresh:
		return ss.refresh(cmd.Refresh, reply)
	default:
		return status.Error(codes.InvalidArgument, "request has no command this server knows: set join, leave or refresh")
	}
	return nil
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newSessionID returns 128 random bits, so session ids cannot be guessed.
func newSessionID() string {
	var b [16]byte
	rand.Read(b[:]) // documented to always fill b
	return idEncoding.EncodeToString(b[:])
}
