package server

import (
	"context"
	"time"

	"google.golang.org/grpc"
)

// A unary call passes through every interceptor of the server's chain, and
// each level of a grpc-go chain costs a closure and a call. The server's
// own interceptors run as one (unaryCalls): the refusal log, panic
// recovery and the access log. The metrics interceptor goes before it and
// the authentication interceptor after it, each only when it is on, and
// the three are given to grpc-go as one interceptor (unaryChain), which
// chains them as grpc-go would, but for a unary Publish binds all but the
// first level to its handler once, when the server is made: a Publish
// allocates no closure for its levels.
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

// unaryChain returns the server's unary interceptors as the one grpc-go
// runs, for New: metrics' if it is not nil, unaryCalls, then authn's if it
// is not nil, in that order. With direct, no other interceptor follows it
// in grpc-go's chain (none came with WithGRPCOptions), so that a Publish
// that reaches it with publishCalls.info brings publishCalls.handler, which
// the levels after the first were bound to (publishCalls.rest); else every
// call is chained as grpc-go chains interceptors.
func (s *Server) unaryChain(metrics, authn grpc.UnaryServerInterceptor, direct bool) grpc.UnaryServerInterceptor {
	var levels []grpc.UnaryServerInterceptor
	if metrics != nil {
		levels = append(levels, metrics)
	}
	levels = append(levels, s.unaryCalls(s.cfg.accessLog))
	if authn != nil {
		levels = append(levels, authn)
	}
	// With direct, only the server's interceptors see a Publish's request.
	s.publishCalls.own = direct
	if len(levels) == 1 { // grpc-go calls it with the handler itself
		return levels[0]
	}
	first, rest := levels[0], levels[1:]
	if direct {
		s.publishCalls.rest = bindLevels(rest, &s.publishCalls.info, s.publishCalls.handler)
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if direct && info == &s.publishCalls.info {
			return first(ctx, req, info, s.publishCalls.rest)
		}
		return first(ctx, req, info, bindLevels(rest, info, handler))
	}
}

// bindLevels returns the handler that runs levels, in order, with info,
// around handler.
func bindLevels(levels []grpc.UnaryServerInterceptor, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) grpc.UnaryHandler {
	if len(levels) == 0 {
		return handler
	}
	next := bindLevels(levels[1:], info, handler)
	return func(ctx context.Context, req any) (any, error) {
		return levels[0](ctx, req, info, next)
	}
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
