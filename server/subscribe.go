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
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

type subscribeStream = grpc.BidiStreamingServer[roomcastv1.SubscribeRequest, roomcastv1.SubscribeResponse]

// commandsPerWake bounds the commands handled between two deliveries, so a
// stream of commands cannot starve the stream's messages.
const commandsPerWake = 16

// session is one Subscribe stream, run by three goroutines. The writer owns
// the subscriber: it runs commands, collects messages and is the only one to
// call Send. The reader decodes commands and hands them to the writer. The
// handler waits for the end and returns the status: it alone can end a
// stream whose writer is blocked in Send because the client stopped reading,
// since returning cancels the stream and so unblocks Send.
type session struct {
	srv       *Server
	id        string
	stream    subscribeStream
	sub       *broker.Subscriber
	cmds      chan *roomcastv1.SubscribeRequest
	recvd     chan error    // the reader's final error
	wrote     chan error    // the writer's final error
	stalled   chan struct{} // closed by the server's sweeper when one Send took longer than the write timeout
	stallOnce sync.Once
	expired   chan struct{} // closed when the stream's credential expires
	expiry    *time.Timer
	stop      chan struct{} // closed when the handler decides to end the stream
	done      chan struct{} // closed when the handler returns

	// Owned by the writer.
	identity *auth.Identity
	commands *rate.Limiter // nil: no limit

	state     atomic.Int32 // idle, sending or stopped
	sendSince atomic.Int64 // the sweeper's tick when the current Send began; 0 when not sending
}

// Session states: the writer moves between idle and sending; the handler
// moves it to stopped, after which the writer starts no Send.
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
		srv:     s,
		id:      id,
		stream:  stream,
		sub:     s.broker.NewSubscriber(id),
		cmds:    make(chan *roomcastv1.SubscribeRequest),
		recvd:   make(chan error, 1),
		wrote:   make(chan error, 1),
		stalled: make(chan struct{}),
		expired: make(chan struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),

		identity: s.access.identity(stream.Context()),
		commands: s.cfg.commandLimiter(),
	}
	s.access.sessions.Store(id, ss.identity.Subject)
	defer s.access.sessions.Delete(id)
	var expireOnce sync.Once
	ss.expiry = expiryTimer(ss.identity, func() { expireOnce.Do(func() { close(ss.expired) }) })
	defer ss.expiry.Stop()
	s.live.Store(ss, struct{}{})
	defer s.live.Delete(ss)
	defer close(ss.done)
	s.goroutines.Add(2)
	go ss.read()
	go ss.write()
	return ss.wait()
}

// wait returns the status the stream ends with, once the writer is done or
// blocked in a Send that returning will cancel. A drain is the writer's to
// notice, once it has sent what it holds; the shutdown deadline cancels the
// stream if it cannot.
func (ss *session) wait() error {
	var err error
	select {
	case err := <-ss.wrote:
		return err
	case <-ss.stalled:
		ss.sub.Stalled()
		err = status.Errorf(codes.ResourceExhausted, "slow consumer: one write took longer than %v; %s", ss.srv.cfg.writeTimeout, broker.FormatSent(ss.sub.Sent()))
		ss.srv.cfg.log.Info("slow consumer cut off", "session", ss.id, "reason", "write timeout")
	case <-ss.expired:
		err = status.Error(codes.Unauthenticated, "the stream's credential expired; send a refresh command before it does, or reconnect with a new one")
	case <-ss.stream.Context().Done():
		err = status.FromContextError(ss.stream.Context().Err()).Err()
	}
	blocked := ss.state.Swap(stopped) == sending
	close(ss.stop)
	if !blocked {
		<-ss.wrote // it sees stopped before its next Send, or is idle and sees stop
	}
	return err
}

// read hands each command to the writer until the stream ends.
func (ss *session) read() {
	defer ss.srv.goroutines.Done()
	for {
		req := new(roomcastv1.SubscribeRequest)
		if err := ss.stream.RecvMsg(req); err != nil {
			ss.recvd <- err
			return
		}
		select {
		case ss.cmds <- req:
		case <-ss.done:
			return
		}
	}
}

// send is the only way the writer calls SendMsg. It costs two atomic
// stores and two compare-and-swaps: the write timeout is kept by the
// server's sweeper, not by a timer per Send.
func (ss *session) send(m any) error {
	if !ss.state.CompareAndSwap(idle, sending) {
		return errStopped
	}
	ss.sendSince.Store(ss.srv.tick.Load())
	err := ss.stream.SendMsg(m)
	ss.sendSince.Store(0)
	if !ss.state.CompareAndSwap(sending, idle) && err == nil {
		err = errStopped
	}
	return err
}

// stall ends the session as a slow consumer.
func (ss *session) stall() { ss.stallOnce.Do(func() { close(ss.stalled) }) }

func (ss *session) write() {
	defer ss.srv.goroutines.Done()
	defer ss.sub.Close()
	ss.wrote <- ss.deliver()
}

func (ss *session) deliver() error {
	if err := ss.send(&roomcastv1.SubscribeResponse{Event: &roomcastv1.SubscribeResponse_Session{
		Session: &roomcastv1.SessionEvent{SessionId: ss.id},
	}}); err != nil {
		return err
	}
	recvd := ss.recvd
	for {
	commands:
		for range commandsPerWake {
			select {
			case req := <-ss.cmds:
				if err := ss.handle(req); err != nil {
					return err
				}
			default:
				break commands
			}
		}
		bufs, err := ss.sub.Collect(ss.srv.cfg.maxBatchBytes)
		if lag := (*broker.LagError)(nil); errors.As(err, &lag) {
			ss.srv.cfg.log.Info("slow consumer cut off", "session", ss.id, "room", lag.Room)
			return status.Error(codes.ResourceExhausted, lag.Error())
		} else if err != nil {
			return brokerStatus(err)
		}
		if bufs != nil {
			if err := ss.send(&frame{bufs}); err != nil {
				return err
			}
			ss.sub.Commit()
			continue
		}
		if !ss.sub.Park() {
			continue
		}
		select {
		case <-ss.sub.Wake():
		case req := <-ss.cmds:
			if err := ss.handle(req); err != nil {
				return err
			}
		case err := <-recvd:
			if err != io.EOF {
				return err
			}
			// The client sent all its commands (grpcurl does so when its
			// input ends) but still listens: keep delivering.
			recvd = nil
		case <-ss.srv.drain:
			// Only once idle: what was sequenced before the drain is sent
			// first, so the offsets below are complete.
			return status.Errorf(codes.Unavailable, "server is shutting down; reconnect and resume; %s", broker.FormatSent(ss.sub.Sent()))
		case <-ss.stop:
			return errStopped
		}
	}
}

// handle runs one command and sends its reply. A command that fails gets an
// error reply; only a failure to send ends the stream.
func (ss *session) handle(req *roomcastv1.SubscribeRequest) error {
	reply := &roomcastv1.CommandReply{Id: req.GetId()}
	if err := ss.execute(ss.stream.Context(), req, reply); err != nil {
		st := status.Convert(err)
		reply.Error = &roomcastv1.Error{Code: int32(st.Code()), Message: st.Message()}
		reply.Result = nil
	}
	return ss.send(&roomcastv1.SubscribeResponse{Event: &roomcastv1.SubscribeResponse_Reply{Reply: reply}})
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
		id, err := ss.srv.access.refresh(ss.identity, cmd.Refresh.GetToken())
		if err != nil {
			return err
		}
		ss.identity = id
		res := &roomcastv1.RefreshResult{}
		ss.expiry.Stop() // if it already fired, the stream is ending anyway
		if !id.Expiry.IsZero() {
			ss.expiry.Reset(time.Until(id.Expiry))
			res.ExpireTime = timestamppb.New(id.Expiry)
		}
		reply.Result = &roomcastv1.CommandReply_Refresh{Refresh: res}
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
