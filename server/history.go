package server

import (
	"context"
	"math"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Limits of History and Presence, documented in the proto.
const (
	defaultHistoryLimit  = 100
	maxHistoryLimit      = 1000
	defaultPresenceLimit = 1000
	maxPresenceLimit     = 10_000
)

// maxReplyBytes bounds a History or Presence response, well under the 4 MiB
// a stock gRPC client accepts: past it, a response holds fewer messages or
// members than asked for (though at least one message). A client pages on
// through History with after; Presence's total tells how many members it
// left out.
const maxReplyBytes = 1 << 20

// serviceDesc is the generated BrokerService description with History served
// by historyHandler, which answers with the broker's encoded messages as
// they are instead of decoding them into a HistoryResponse to encode again,
// Publish by publishMethod (see publishcall.go), every request checked
// before it is decoded (see decode.go), and a call whose refusal the tap
// deferred refused first (see deferredrefusal.go).
func serviceDesc() *grpc.ServiceDesc {
	desc := roomcastv1.BrokerService_ServiceDesc
	desc.Methods = append([]grpc.MethodDesc(nil), desc.Methods...)
	for i := range desc.Methods {
		switch desc.Methods[i].MethodName {
		case "History":
			desc.Methods[i].Handler = historyHandler
		case "Publish":
			desc.Methods[i].Handler = publishMethod // see publishcall.go
		}
	}
	checkRequests(&desc)
	refuseDeferred(&desc) // first, before the checks
	return &desc
}

func historyHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	req := new(roomcastv1.HistoryRequest)
	if err := dec(req); err != nil {
		return nil, err
	}
	handler := func(ctx context.Context, req any) (any, error) {
		return srv.(*Server).history(ctx, req.(*roomcastv1.HistoryRequest))
	}
	if interceptor == nil {
		return handler(ctx, req)
	}
	return interceptor(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: roomcastv1.BrokerService_History_FullMethodName}, handler)
}

// history serves BrokerService.History as an encoded HistoryResponse.
func (s *Server) history(ctx context.Context, req *roomcastv1.HistoryRequest) (*frame, error) {
	if err := broker.ValidateRoom(req.GetRoom()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	limit, err := limitOf(req.GetLimit(), defaultHistoryLimit, maxHistoryLimit)
	if err != nil {
		return nil, err
	}
	id := s.caller(ctx)
	if err := s.allowRead(ctx, id, auth.Subscribe, req.GetRoom()); err != nil {
		return nil, err
	}
	bufs, err := s.broker.History(ctx, req.GetRoom(), req.GetAfter(), limit, maxReplyBytes-historyTrailerBytes, req.GetNewestFirst())
	if err != nil {
		return nil, brokerStatus(err)
	}
	s.access.chargeRead(id, bufs.Len())
	return &frame{bufs}, nil
}

// allowRead refuses a History or Presence call of id on room unless its
// grants allow it perm there, its credential owes nothing of its read byte
// rate (the tap checked before, but another call may have been charged
// since, and calls of the web handler or in this process pass no tap), and
// it has a token of its read rate, which the tap may have taken.
func (s *Server) allowRead(ctx context.Context, id *auth.Identity, perm auth.Permission, room string) error {
	if err := s.access.allow(id, perm, room); err != nil {
		return err
	}
	if err := s.access.allowReadBytes(id); err != nil {
		return err
	}
	return s.readToken(ctx, id) // unless the tap took it
}

// History implements BrokerService.History for callers in this process; the
// gRPC service is served by historyHandler.
func (s *Server) History(ctx context.Context, req *roomcastv1.HistoryRequest) (*roomcastv1.HistoryResponse, error) {
	f, err := s.history(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := new(roomcastv1.HistoryResponse)
	if err := newCodec().Unmarshal(f.bufs, resp); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return resp, nil
}

// Presence implements BrokerService.Presence.
func (s *Server) Presence(ctx context.Context, req *roomcastv1.PresenceRequest) (*roomcastv1.PresenceResponse, error) {
	if err := broker.ValidateRoom(req.GetRoom()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	limit, err := limitOf(req.GetLimit(), defaultPresenceLimit, maxPresenceLimit)
	if err != nil {
		return nil, err
	}
	id := s.caller(ctx)
	if err := s.allowRead(ctx, id, auth.Presence, req.GetRoom()); err != nil {
		return nil, err
	}
	members, total, err := s.broker.Presence(ctx, req.GetRoom(), limit)
	if err != nil {
		return nil, brokerStatus(err)
	}
	members, size := fitMembers(members)
	s.access.chargeRead(id, size)
	return &roomcastv1.PresenceResponse{Members: members, Total: uint32(total)}, nil
}

// historyTrailerBytes bounds what a HistoryResponse holds besides its
// messages: the room's offset and epoch.
const historyTrailerBytes = 64

// fitMembers returns the first of members that fit in a PresenceResponse of
// maxReplyBytes, with room for its total, and the size of that response
// (the total's counted at its largest).
func fitMembers(members []*roomcastv1.Member) ([]*roomcastv1.Member, int) {
	size := protowire.SizeTag(2) + protowire.SizeVarint(math.MaxUint32) // the total
	for i, m := range members {
		n := protowire.SizeTag(1) + protowire.SizeBytes(m.SizeVT()) // not proto.Size, which reflects on each map entry
		if size+n > maxReplyBytes {
			return members[:i], size
		}
		size += n
	}
	return members, size
}

func limitOf(n uint32, def, most int) (int, error) {
	switch {
	case n == 0:
		return def, nil
	case int64(n) > int64(most):
		return 0, status.Errorf(codes.InvalidArgument, "limit %d is over the maximum of %d", n, most)
	}
	return int(n), nil
}
