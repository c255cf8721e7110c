package server

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

type subscribeStream = grpc.BidiStreamingServer[roomcastv1.SubscribeRequest, roomcastv1.SubscribeResponse]

// commandsPerWake bounds the commands handled between two deliveries, so a
// stream of commands cannot starve the stream's messages.
const commandsPerWake = 16

// session is one Subscribe stream. The handler goroutine owns it and is the
// only one to call Send; a reader goroutine decodes commands and hands them
// over, so a session is never blocked reading while it has messages to send.
type session struct {
	srv    *Server
	stream subscribeStream
	sub    *broker.Subscriber
	cmds   chan *roomcastv1.SubscribeRequest
	recvd  chan error    // the reader's final error
	done   chan struct{} // closed when the handler returns
}

// Subscribe implements BrokerService.Subscribe.
func (s *Server) Subscribe(stream subscribeStream) error {
	if s.isDraining() {
		return status.Error(codes.Unavailable, "server is shutting down; reconnect to another instance")
	}
	id := newSessionID()
	ss := &session{
		srv:    s,
		stream: stream,
		sub:    s.broker.NewSubscriber(id),
		cmds:   make(chan *roomcastv1.SubscribeRequest),
		recvd:  make(chan error, 1),
		done:   make(chan struct{}),
	}
	defer ss.sub.Close()
	defer close(ss.done)
	s.readers.Add(1)
	go ss.read()
	return ss.run(id)
}

// read hands each command to the handler until the stream ends. It returns
// once the handler has, at the latest: returning cancels the stream, which
// ends RecvMsg.
func (ss *session) read() {
	defer ss.srv.readers.Done()
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

func (ss *session) run(id string) error {
	if err := ss.stream.Send(&roomcastv1.SubscribeResponse{Event: &roomcastv1.SubscribeResponse_Session{
		Session: &roomcastv1.SessionEvent{SessionId: id},
	}}); err != nil {
		return err
	}
	ctx := ss.stream.Context()
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
			ss.srv.cfg.log.Info("slow consumer cut off", "session", id, "room", lag.Room)
			return status.Error(codes.ResourceExhausted, lag.Error())
		} else if err != nil {
			return brokerStatus(err)
		}
		if bufs != nil {
			if err := ss.stream.SendMsg(&frame{bufs}); err != nil {
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
			return status.Error(codes.Unavailable, "server is shutting down; reconnect and join again")
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// handle runs one command and sends its reply. A command that fails gets an
// error reply; only a failure to send ends the stream.
func (ss *session) handle(req *roomcastv1.SubscribeRequest) error {
	reply := &roomcastv1.CommandReply{Id: req.GetId()}
	if err := ss.execute(req, reply); err != nil {
		st := status.Convert(err)
		reply.Error = &roomcastv1.Error{Code: int32(st.Code()), Message: st.Message()}
		reply.Result = nil
	}
	return ss.stream.Send(&roomcastv1.SubscribeResponse{Event: &roomcastv1.SubscribeResponse_Reply{Reply: reply}})
}

func (ss *session) execute(req *roomcastv1.SubscribeRequest, reply *roomcastv1.CommandReply) error {
	if err := validateCommandID(req.GetId()); err != nil {
		reply.Id = ""
		return status.Error(codes.InvalidArgument, err.Error())
	}
	ctx := ss.stream.Context()
	switch cmd := req.GetCommand().(type) {
	case *roomcastv1.SubscribeRequest_Join:
		room := cmd.Join.GetRoom()
		if err := broker.ValidateRoom(room); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if ss.sub.Rooms() >= ss.srv.cfg.maxRooms {
			return status.Errorf(codes.ResourceExhausted, "this stream is in %d rooms, the limit; leave one first", ss.sub.Rooms())
		}
		off, err := ss.sub.Join(ctx, room)
		if err != nil {
			return brokerStatus(err)
		}
		reply.Result = &roomcastv1.CommandReply_Join{Join: &roomcastv1.JoinResult{Room: room, Offset: off}}
	case *roomcastv1.SubscribeRequest_Leave:
		room := cmd.Leave.GetRoom()
		if err := broker.ValidateRoom(room); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if err := ss.sub.Leave(room); err != nil {
			return brokerStatus(err)
		}
		reply.Result = &roomcastv1.CommandReply_Leave{Leave: &roomcastv1.LeaveResult{Room: room}}
	default:
		return status.Error(codes.InvalidArgument, "request has no command this server knows: set join or leave")
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
