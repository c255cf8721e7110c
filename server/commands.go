package server

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// handle runs one command and sends its reply, unless a later turn will (see
// joins.go). A command that fails gets an error reply; only a failure to
// send ends the stream, or a flood of commands past the rate limits (see
// rateLimit).
func (ss *session) handle(w *connWriter, c command) error {
	req := c.req
	reply := ss.newReply(req.GetId())
	err := c.refused // the reader's rate limits (see cmdrate.go)
	if err == nil {
		err = ss.execute(w, req, reply)
	} else if validateCommandID(req.GetId()) != nil && !ss.watch {
		reply.Id = ""
	}
	ss.logCommand(req, err)
	if errors.Is(err, errReplyLater) {
		return nil
	}
	if errors.Is(err, errCommandFlood) {
		ss.srv.commandFloods.Add(1)
		return status.Errorf(codes.ResourceExhausted, "too many commands past the rate limit: more than %d refused in a second", ss.srv.cfg.maxRefusedCommands)
	}
	ss.fail(reply, err)
	return ss.sendReply(w, reply)
}

func (ss *session) execute(w *connWriter, req *roomcastv1.SubscribeRequest, reply *roomcastv1.CommandReply) error {
	// A Watch's ids are its rooms' names, which validateWatch checked and
	// which may be longer than a client's command id.
	if err := validateCommandID(req.GetId()); err != nil && !ss.watch {
		reply.Id = ""
		return status.Error(codes.InvalidArgument, err.Error())
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
		return ss.beginJoin(req, room, opts, reply)
	case *roomcastv1.SubscribeRequest_Leave:
		room := cmd.Leave.GetRoom()
		if err := broker.ValidateRoom(room); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if err := ss.cancelDeferredJoin(w, room); err != nil {
			return err
		}
		if err := ss.sub.Leave(room); err != nil {
			return brokerStatus(err)
		}
		ss.left(reply, room)
	case *roomcastv1.SubscribeRequest_Refresh:
		return ss.refresh(cmd.Refresh, reply)
	default:
		return status.Error(codes.InvalidArgument, "request has no command this server knows: set join, leave or refresh")
	}
	return nil
}
