package server

import (
	"context"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"google.golang.org/grpc"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A stream's handler goroutine keeps every interceptor's frame on its
// stack for as long as the stream lasts, and an idle Subscribe stream is
// mostly that goroutine's stack; each level of a grpc-go chain also costs
// a closure, kept as long. So, as for unary calls (unary.go), the server's
// own stream interceptors run as one, streamCalls: the access log's
// record and line, the refusal log, panic recovery and the per-credential
// stream limit. Around authentication, when it is on, they are two:
// streamCalls before it, admittedStreams after. The metrics interceptor
// stays go-grpc-middleware's own, ahead of them all, so that what it
// counts is what the library counts.

// metricsStreams returns m's stream interceptor for every stream but
// Subscribe's. The library wraps a
// stream to count each message it sends, which on Subscribe is a counter
// lookup and two clock reads per response, on the fan-out's hottest path
// (in a CPU profile of the paced fan-out, nearly as much as grpc-go's own
// SendMsg). roomcast counts what Subscribe streams deliver itself
// (roomcast_messages_delivered_total, roomcast_slow_consumers_total), and
// the access log has each stream's end and code; the price is that
// Subscribe is in no grpc_server_* metric. It compares the method's name
// itself: the library's selector builds a CallMeta for every stream, which
// splits the name and formats it again (three allocations a stream).
func metricsStreams(m *grpcprom.ServerMetrics) grpc.StreamServerInterceptor {
	counted := m.StreamServerInterceptor()
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if info.FullMethod == roomcastv1.BrokerService_Subscribe_FullMethodName {
			return handler(srv, ss)
		}
		return counted(srv, ss, info, handler)
	}
}

// streamInterceptors returns the server's stream interceptors that follow
// the metrics one, in order, for New: with authn, authentication's between
// the two of the server's own.
func (s *Server) streamInterceptors(authn grpc.StreamServerInterceptor) []grpc.StreamServerInterceptor {
	if authn == nil {
		return []grpc.StreamServerInterceptor{s.streamCalls(true)}
	}
	return []grpc.StreamServerInterceptor{s.streamCalls(false), authn, s.admittedStreams}
}

// streamCalls returns the interceptor that makes a stream's access record
// and logs its line (with the access log on), logs the refusals of streams
// (by authentication, which follows it, and by the handlers), and recovers
// a panic of the handler or a later interceptor, ending the stream with
// INTERNAL. With admit, it also does what admittedStreams does, which is
// right only when no interceptor between it and the handler can refuse
// the stream.
func (s *Server) streamCalls(admit bool) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !s.cfg.accessLog || !logged(info.FullMethod) {
			return s.refusedStream(srv, ss, info, handler, admit, nil)
		}
		ctx := ss.Context()
		rctx, r := withRecord(ctx)
		began := time.Now()
		err := s.refusedStream(srv, &recordedStream{ServerStream: ss, ctx: rctx}, info, handler, admit, r)
		if log, level := s.cfg.log, s.cfg.accessLevel; r.ran && log.Enabled(ctx, level) {
			s.logCall(ctx, level, info.FullMethod, streamType(info), r, err, time.Since(began))
		}
		return err
	}
}

// refusedStream is streamCalls' part inside the access log: it logs the
// stream's refusal, if it ends with one.
func (s *Server) refusedStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler, admit bool, r *callRecord) error {
	err := s.recoverStream(srv, ss, info, handler, admit, r)
	if refusedByAccess(err) { // not every stream's end: its peer's address costs an allocation
		s.access.log.refused(err, peerAddr(ss.Context()), "rpc", info.FullMethod)
	}
	return err
}

// recoverStream runs the rest of the stream's interceptors and its handler,
// turning a panic in them into INTERNAL after logging and counting it.
func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler, admit bool, r *callRecord) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = s.callPanicked(ss.Context(), p)
		}
	}()
	if admit {
		return s.admitted(srv, ss, info, handler, r)
	}
	return handler(srv, ss)
}

// admissionKey keys a counted stream's *admission in its context: what
// gives its place among its credential's streams back, once. The interceptor
// gives it back when the handler returns, before grpc-go writes the
// status; a session that ends its stream from outside, having grpc-go
// write the status at once, gives it back first (see session.endWith), so
// that a client told its stream ended may open another at once.
type admissionKey struct{}

// admission is a counted stream's place among its credential's streams.
type admission struct {
	given   atomic.Bool
	release func()
}

// giveBack gives the place back, once however often called (by the
// interceptor and the session, on their goroutines); nil gives nothing.
func (a *admission) giveBack() {
	if a != nil && a.given.CompareAndSwap(false, true) {
		a.release()
	}
}

// admittedStream is a counted stream: its admission is a part of it, one
// allocation rather than a closure's several.
type admittedStream struct {
	grpc.ServerStream
	ctx context.Context
	adm admission
}

func (s *admittedStream) Context() context.Context { return s.ctx }

// admissionOf returns the admission of ctx's counted stream, or nil.
func admissionOf(ctx context.Context) *admission {
	a, _ := ctx.Value(admissionKey{}).(*admission)
	return a
}

// admittedStreams is the interceptor that follows authentication: it
// keeps each credential within its streams (admitStream) and records the
// caller in the stream's access record.
func (s *Server) admittedStreams(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return s.admitted(srv, ss, info, handler, recordOf(ss.Context()))
}

// admitted runs handler once the stream is admitted, with the caller in r,
// the stream's access record (nil for none).
func (s *Server) admitted(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler, r *callRecord) error {
	counts := s.access.countsOf(info.FullMethod)
	if counts == nil && r == nil {
		return handler(srv, ss)
	}
	ctx := ss.Context()
	id := s.access.identity(ctx)
	if counts != nil {
		release, err := s.admitStream(ctx, counts, id)
		if err != nil {
			return err
		}
		as := &admittedStream{ServerStream: ss, adm: admission{release: release}}
		as.ctx = context.WithValue(ctx, admissionKey{}, &as.adm)
		defer as.adm.giveBack()
		ss = as
	}
	if r != nil {
		r.subject, r.ran = id.Subject, true
	}
	return handler(srv, ss)
}
