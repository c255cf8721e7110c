package server

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

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

// serviceDesc is the generated BrokerService description with History and
// Presence served by frameHandler, which answers with the broker's encoded
// messages and members as they are instead of decoding them into a
// response to encode again, Publish by publishMethod (see publishcall.go),
// every request checked before it is decoded (see decode.go), and a call
// whose refusal the tap deferred refused first (see deferredrefusal.go).
func serviceDesc() *grpc.ServiceDesc {
	desc := roomcastv1.BrokerService_ServiceDesc
	desc.Methods = append([]grpc.MethodDesc(nil), desc.Methods...)
	for i := range desc.Methods {
		switch desc.Methods[i].MethodName {
		case "History":
			desc.Methods[i].Handler = frameHandler(roomcastv1.BrokerService_History_FullMethodName, (*Server).history)
		case "Presence":
			desc.Methods[i].Handler = frameHandler(roomcastv1.BrokerService_Presence_FullMethodName, (*Server).presence)
		case "Publish":
			desc.Methods[i].Handler = publishMethod // see publishcall.go
		}
	}
	checkRequests(&desc)
	refuseDeferred(&desc) // first, before the checks
	return &desc
}

// frameHandler is the handler of the unary method fullMethod that serve
// answers with a frame.
func frameHandler[Req any](fullMethod string, serve func(*Server, context.Context, *Req) (*frame, error)) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		req := new(Req)
		if err := dec(req); err != nil {
			return nil, err
		}
		handler := func(ctx context.Context, req any) (any, error) {
			return serve(srv.(*Server), ctx, req.(*Req))
		}
		if interceptor == nil {
			return handler(ctx, req)
		}
		return interceptor(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: fullMethod}, handler)
	}
}

// history serves BrokerService.History as an encoded HistoryResponse.
func (s *Server) history(ctx context.Context, req *roomcastv1.HistoryRequest) (*frame, error) {
	return s.read(ctx, read{method: roomcastv1.BrokerService_History_FullMethodName, room: req.GetRoom(), limit: req.GetLimit(), def: defaultHistoryLimit, most: maxHistoryLimit, perm: auth.Subscribe},
		func(limit int) (mem.BufferSlice, error) {
			return s.broker.History(ctx, req.GetRoom(), req.GetAfter(), limit, maxReplyBytes-historyTrailerBytes, req.GetNewestFirst())
		})
}

// read is what a History or Presence call asks of the server: a room, how
// many messages or members, with its method's default and maximum, and
// the permission it needs.
type read struct {
	method    string // the call's full name
	room      string
	limit     uint32
	def, most int
	perm      auth.Permission
}

// read serves a History or Presence call, r, with what answer returns for
// its limit, once the call is allowed, and charges the answer's bytes to
// its credential.
func (s *Server) read(ctx context.Context, r read, answer func(limit int) (mem.BufferSlice, error)) (*frame, error) {
	if err := broker.ValidateRoom(r.room); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	limit, err := limitOf(r.limit, r.def, r.most)
	if err != nil {
		return nil, err
	}
	id, tapped := s.tappedCaller(ctx, r.method, s.access.checksReads())
	if err := s.admitRead(id, tapped, r.perm, r.room); err != nil {
		return nil, err
	}
	bufs, err := answer(limit)
	if err != nil {
		return nil, brokerStatus(err)
	}
	s.access.chargeRead(id, bufs.Len())
	return &frame{bufs}, nil
}

// admitRead refuses a History or Presence call of id on room unless its
// grants allow it perm there, its credential owes nothing of its read byte
// rate (checked again after the tap: other calls' answers may have been
// charged since), and, for a call whose token the tap did not take (tapped
// false: one made in this process), it has a token of its read rate.
func (s *Server) admitRead(id *auth.Identity, tapped bool, perm auth.Permission, room string) error {
	if err := s.access.allow(id, perm, room); err != nil {
		return err
	}
	if err := s.access.allowReadBytes(id); err != nil {
		return err
	}
	if tapped {
		return nil // the tap took the token (see tappedCall)
	}
	return s.access.allowRead(id)
}

// History implements BrokerService.History for callers in this process and
// the web handler; the gRPC service is served by frameHandler.
func (s *Server) History(ctx context.Context, req *roomcastv1.HistoryRequest) (*roomcastv1.HistoryResponse, error) {
	return decoded[roomcastv1.HistoryResponse](s.history(ctx, req))
}

// decoded is the answer f, if there was no error, decoded.
func decoded[Resp any](f *frame, err error) (*Resp, error) {
	if err != nil {
		return nil, err
	}
	resp := new(Resp)
	if err := newCodec().Unmarshal(f.bufs, resp); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return resp, nil
}

// historyTrailerBytes bounds what a HistoryResponse holds besides its
// messages: the room's offset and epoch.
const historyTrailerBytes = 64

func limitOf(n uint32, def, most int) (int, error) {
	switch {
	case n == 0:
		return def, nil
	case int64(n) > int64(most):
		return 0, status.Errorf(codes.InvalidArgument, "limit %d is over the maximum of %d", n, most)
	}
	return int(n), nil
}
