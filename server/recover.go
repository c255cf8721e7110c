package server

import (
	"context"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/roomcast/roomcast/broker"
)

// A panic in work a client triggered ends only the stream it was serving,
// never the process: a stream's reader and the connection writers recover,
// log the panic with its stack, count it in roomcast_panics_total, and end
// that one stream with INTERNAL. A call's handler is recovered the same way,
// by unaryCalls for unary calls and streamCalls for streams, and ends that
// call; a unary call's request is decoded before either runs, and is
// recovered by recoverDecode. A writer that panics hands its connection's lists to
// a successor first (see connWriter.recoverPanic), so the connection's
// other streams go on.

// recovered logs and counts a panic recovered in where, while serving the
// session called id ("" if none). It runs in the deferred function that
// recovered, so the stack still shows where the panic began.
func (s *Server) recovered(v any, where, id string) {
	s.panics.Add(1)
	s.cfg.log.Error("recovered from a panic; the call or stream it served ends with INTERNAL",
		"in", where, "session", id, "panic", v, "stack", string(debug.Stack()))
}

// panicked is the status of a stream ended by a recovered panic. It names
// the last offsets sent, as the other endings do, so the client can resume.
func (ss *session) panicked() error {
	return status.Errorf(codes.Internal, "the server failed while serving this stream; reconnect and resume; %s", broker.FormatSent(ss.sub.Sent()))
}

// recoverReader, deferred by readGuarded, ends the stream after a panic in it.
func (ss *session) recoverReader() {
	if v := recover(); v != nil {
		ss.srv.recovered(v, "stream reader", ss.id)
		ss.endWith(ss.panicked())
	}
}

// recoverPanic, deferred by run, recovers a panic in w. If w was the
// connection's current writer it is retired and a successor started, as
// when a Send blocks: the successor finds the sessions w had collected,
// sent or not yet served on the connection's lists. The one session w held
// off the lists, if any, ends with INTERNAL and is finished here, as no
// writer will release it.
func (w *connWriter) recoverPanic() {
	v := recover()
	if v == nil {
		return
	}
	ss := w.holding
	id := ""
	if ss != nil {
		id = ss.id
	}
	w.c.srv.recovered(v, "connection writer", id)
	w.sendStartedAt.Store(0) // it may have panicked in a Send: nothing to watch now
	c := w.c
	c.mu.Lock()
	if c.writer == w {
		w.retired = true
		c.start()
	}
	c.mu.Unlock()
	if ss != nil {
		ss.abort()
	}
}

// recoverTap returns t with a panic in it recovered: logged with its stack
// and counted, and the call refused with INTERNAL. grpc-go runs the tap on
// a connection's reading goroutine, where a panic would end the process
// (the web path's calls run it too).
func (s *Server) recoverTap(t tap.ServerInHandle) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (_ context.Context, err error) {
		defer func() {
			if p := recover(); p != nil {
				s.recovered(p, info.FullMethodName, "")
				err = status.Error(codes.Internal, "the server failed this call; it has been logged")
			}
		}()
		if hook := s.cfg.tapHook; hook != nil {
			hook(info.FullMethodName)
		}
		return t(ctx, info)
	}
}

// callPanicked logs and counts panic p of the call of ctx, and returns
// the status that ends the call. The client is told nothing of the panic.
func (s *Server) callPanicked(ctx context.Context, p any) error {
	method, _ := grpc.Method(ctx)
	s.recovered(p, method, "")
	return status.Error(codes.Internal, "the server failed this call; it has been logged")
}

// guarded runs one round of a goroutine of the server's own (the sweeper,
// the health watch): a panic in it is logged and counted, and the goroutine
// goes on with its next round. The round must release what it locks with
// deferred calls.
func (s *Server) guarded(where string, round func()) {
	defer func() {
		if v := recover(); v != nil {
			s.recovered(v, where, "")
		}
	}()
	round()
}
