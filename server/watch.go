package server

import (
	"context"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A Watch call is a Subscribe session whose commands are its request's
// joins, one per room with the room's name as the command's id, and then
// none: its reader reaches the end of the commands at once, and the session,
// as a Subscribe stream's does at io.EOF, goes on delivering until the call
// is cancelled or the server ends it. Everything else (turns, the shared
// frames, grants, limits, the slow-consumer cut-off, credential expiry) is
// the Subscribe session's own, on gRPC and on the web handler alike.

// Watch implements BrokerService.Watch.
func (s *Server) Watch(req *roomcastv1.WatchRequest, stream grpc.ServerStreamingServer[roomcastv1.WatchResponse]) error {
	if err := s.validateWatch(req); err != nil {
		return err
	}
	return s.serve(newWatchStream(stream, req), true)
}

// maxJoinBytes bounds one room of a WatchRequest: a room name of at most
// 200 bytes, presence info of at most 1 KiB in 16 entries with their tags,
// a position whose epoch is an id, and the field tags around them.
const maxJoinBytes = 2 << 10

// maxWatchBytes is the size limit of a WatchRequest on a server whose
// sessions may join maxRooms rooms.
func maxWatchBytes(maxRooms int) int { return maxRooms * maxJoinBytes }

// validateWatch refuses a request that could not be served as a whole with
// INVALID_ARGUMENT: no rooms, more than a session may join, a room named
// twice, or a room whose join could never succeed (a bad name or presence
// info). Grants are the joins' to check, room by room.
func (s *Server) validateWatch(req *roomcastv1.WatchRequest) error {
	rooms := req.GetRooms()
	switch {
	case len(rooms) == 0:
		return status.Error(codes.InvalidArgument, "a Watch request names no room; name at least one")
	case len(rooms) > s.cfg.maxRooms:
		return status.Errorf(codes.InvalidArgument, "a Watch request names %d rooms; the limit is %d: open more calls", len(rooms), s.cfg.maxRooms)
	}
	seen := make(map[string]struct{}, len(rooms))
	for i, j := range rooms {
		if err := broker.ValidateRoom(j.GetRoom()); err != nil {
			return status.Errorf(codes.InvalidArgument, "rooms[%d]: %v", i, err)
		}
		if err := validateInfo(j.GetInfo()); err != nil {
			return status.Errorf(codes.InvalidArgument, "rooms[%d]: %v", i, err)
		}
		if _, dup := seen[j.GetRoom()]; dup {
			return status.Errorf(codes.InvalidArgument, "rooms[%d]: room %q is named twice; name each room once", i, j.GetRoom())
		}
		seen[j.GetRoom()] = struct{}{}
	}
	return nil
}

// watchStream is a Watch call as a session's subscribeStream: SendMsg is the
// call's, and RecvMsg returns one join command per room, then io.EOF. Only
// the session's reader calls RecvMsg.
type watchStream struct {
	subscribeSender
	rooms []*roomcastv1.JoinCommand
	next  int
}

// subscribeSender is what a watchStream keeps of its call: a gRPC server
// stream, or the web handler's (see webwatch.go).
type subscribeSender interface {
	Context() context.Context
	SendMsg(m any) error
}

func newWatchStream(call subscribeSender, req *roomcastv1.WatchRequest) *watchStream {
	return &watchStream{subscribeSender: call, rooms: req.GetRooms()}
}

// RecvMsg fills m, a *SubscribeRequest, with the next room's join.
func (w *watchStream) RecvMsg(m any) error {
	if w.next == len(w.rooms) {
		return io.EOF
	}
	req, ok := m.(*roomcastv1.SubscribeRequest)
	if !ok {
		return fmt.Errorf("watch: cannot receive into %T", m)
	}
	j := w.rooms[w.next]
	w.next++
	req.Id = j.GetRoom()
	req.Command = &roomcastv1.SubscribeRequest_Join{Join: j}
	return nil
}
