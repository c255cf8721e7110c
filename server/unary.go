package server

import (
	"context"
	"time"

	"google.golang.org/grpc"

	"github.com/roomcast/roomcast/auth"
)

// A unary call passes through every interceptor of the server's chain, and
// each level of a grpc-go chain costs a closure and a call. The server's
// own interceptors that sit next to each other in the chain (the refusal
// log, panic recovery and, without authentication between them, the access
// log's outer interceptor and its record) run as one: unaryCalls. The
// metrics and authentication interceptors, and with authentication the
// access log's outer one, which must run before it, stay interceptors of
// their own, and are in the chain only when they are on.

// unaryInterceptors returns the server's unary interceptors that follow the
// access log's outer one, if any (accessLog), in order, for New: authn's,
// or none.
func (s *Server) unaryInterceptors(authn grpc.UnaryServerInterceptor) []grpc.UnaryServerInterceptor {
	if authn == nil {
		return []grpc.UnaryServerInterceptor{s.unaryCalls(s.cfg.accessLog)}
	}
	chain := []grpc.UnaryServerInterceptor{s.unaryCalls(false), authn}
	if s.cfg.accessLog {
		chain = append(chain, func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			s.recordCall(ctx, req)
			return handler(ctx, req)
		})
	}
	return chain
}

// unaryCalls returns the interceptor that logs the refusals of unary calls
// (by authentication, which follows it, and by the handlers) and recovers
// a panic of the handler or a later interceptor, ending the call with
// INTERNAL. With log, it is the access log's interceptor too, which is
// right only when no interceptor between it and the handler can refuse the
// call: its record is made after the call, only for a line that is logged
// (a successful Publish's is not, at serve's levels), from the call's
// caller and request, which are all a unary call's record holds.
func (s *Server) unaryCalls(log bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		line := log && logged(info.FullMethod) // an access line, if its level is on
		var began time.Time
		if line {
			began = time.Now()
		}
		resp, err := s.recoverCall(ctx, req, handler)
		if err != nil {
			s.access.log.refused(err, peerAddr(ctx), "rpc", info.FullMethod)
		}
		if line {
			if lvl, ok := s.unaryLine(ctx, info.FullMethod, err); ok {
				var r callRecord
				r.init()
				s.fillRecord(ctx, &r, req)
				s.logUnaryLine(ctx, lvl, info.FullMethod, &r, began, err)
			}
		}
		return resp, err
	}
}

// recoverCall runs handler, turning a panic in it into INTERNAL after
// logging and counting it.
func (s *Server) recoverCall(ctx context.Context, req any, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, s.callPanicked(ctx, p)
		}
	}()
	return handler(ctx, req)
}

// recordCall fills the access record of the unary call of ctx, if it has
// one: its caller, and the room its request names.
func (s *Server) recordCall(ctx context.Context, req any) {
	if r := recordOf(ctx); r != nil {
		s.fillRecord(ctx, r, req)
	}
}

// fillRecord fills r, the access record of the unary call of ctx: its
// caller, and the room its request names.
func (s *Server) fillRecord(ctx context.Context, r *callRecord, req any) {
	r.caller = s.access.callIdentity(ctx)
	r.subject, r.ran = r.caller.Subject, true
	if x, ok := req.(interface{ GetRoom() string }); ok && x.GetRoom() != "" {
		r.room(x.GetRoom())
	}
}

// caller is the identity of the unary call of ctx: as its access record
// holds it, or worked out.
func (s *Server) caller(ctx context.Context) *auth.Identity {
	if r := recordOf(ctx); r != nil && r.caller != nil {
		return r.caller
	}
	return s.access.callIdentity(ctx)
}
