package server

import (
	"context"
	"time"

	"google.golang.org/grpc"

	"github.com/roomcast/roomcast/auth"
)

// A unary call passes through every interceptor of the server's chain, and
// each level of a grpc-go chain costs a closure and a call. The server's
// own interceptors run as one (unaryCalls): the refusal log, panic
// recovery and the access log. The metrics interceptor goes before it and
// the authentication interceptor after it, each in the chain only when it
// is on: with both, a unary call passes three levels.
//
// The access log needs no record in the call's context while a unary call
// runs: the handlers add nothing to it, and what its line says beyond
// gRPC's own, the caller and the room, is known after the call, from the
// call's context and request: with authentication on, the tap (tap.go),
// which grpc-go runs for every call before any interceptor (and which
// WithGRPCOptions cannot replace: grpc-go refuses a second tap), put there
// the identity it authenticated, which the authentication interceptor only
// checks is there; with it off, callIdentity makes the anonymous caller's
// from the client's address.

// unaryInterceptors returns the server's unary interceptors that follow the
// metrics interceptor, if any, in order, for New: unaryCalls, then authn's
// if authn is not nil.
func (s *Server) unaryInterceptors(authn grpc.UnaryServerInterceptor) []grpc.UnaryServerInterceptor {
	chain := []grpc.UnaryServerInterceptor{s.unaryCalls(s.cfg.accessLog)}
	if authn != nil {
		chain = append(chain, authn)
	}
	return chain
}

// unaryCalls returns the interceptor that logs the refusals of unary calls
// (by authentication, which follows it, and by the handlers) and recovers
// a panic of the handler or a later interceptor, ending the call with
// INTERNAL. With log, it is the access log's interceptor too: a call's
// record is made after the call, only for a line that is logged (a
// successful Publish's is not, at serve's levels), from the call's caller
// and request, which are all a unary call's record holds. Authentication
// between it and the handler refuses calls only with UNAUTHENTICATED,
// which the access log leaves to the refusal log (refusedByAccess).
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

// fillRecord fills r, the access record of the unary call of ctx: its
// caller, and the room its request names.
func (s *Server) fillRecord(ctx context.Context, r *callRecord, req any) {
	r.subject = s.access.callIdentity(ctx).Subject
	if x, ok := req.(interface{ GetRoom() string }); ok && x.GetRoom() != "" {
		r.room(x.GetRoom())
	}
}

// caller is the identity of the unary call of ctx.
func (s *Server) caller(ctx context.Context) *auth.Identity {
	return s.access.callIdentity(ctx)
}
