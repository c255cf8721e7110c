package server

import (
	"context"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// watch serves a web Watch call as the gRPC Watch is served: a session
// (see watch.go) whose Sends are connect-go's, through the codecs of
// webcodec.go. The per-credential stream limit, which an interceptor
// applies on gRPC, is applied here.
func (w *webService) watch(ctx context.Context, req *connect.Request[roomcastv1.WatchRequest], stream *connect.ServerStream[roomcastv1.WatchResponse]) error {
	s := w.s
	if err := s.validateWatch(req.Msg); err != nil {
		return err
	}
	release, err := s.access.streams.open(s.access.identity(ctx))
	if err != nil {
		s.guard.refusedCall(ctx)
		return err
	}
	defer release()
	ws := &webStream{ctx: ctx, conn: stream.Conn(), writeTimeout: s.cfg.writeTimeout}
	if rw, ok := ctx.Value(webWriterKey{}).(http.ResponseWriter); ok {
		ws.rc = http.NewResponseController(rw)
	}
	ws.idle.L = &ws.mu
	err = s.serve(newWatchStream(ws, req.Msg), true)
	ws.stop()
	return err
}

// webStream is a web Watch call as a session's stream. Unlike grpc-go's
// streams, an http.ResponseWriter must not be written once its handler has
// returned, and returning does not unblock a Write under way: so the
// handler, once the session has ended, stops the stream (stop), which cuts
// short a Send under way with a write deadline and waits for it, and after
// which no Send starts.
type webStream struct {
	ctx          context.Context
	conn         connect.StreamingHandlerConn
	rc           *http.ResponseController // nil if the handler was not given its writer
	writeTimeout time.Duration

	mu      sync.Mutex
	idle    sync.Cond // signalled when a Send ends; its L is &mu
	sending bool      // a Send is under way; guarded by mu
	stopped bool      // guarded by mu
}

func (w *webStream) Context() context.Context { return w.ctx }

// SendMsg sends m, a *SubscribeResponse or a *frame, unless the stream has
// stopped. No lock is held across the Send itself.
func (w *webStream) SendMsg(m any) error {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return errStopped
	}
	w.sending = true
	w.mu.Unlock()
	err := w.conn.Send(m)
	w.mu.Lock()
	w.sending = false
	w.idle.Broadcast()
	w.mu.Unlock()
	return err
}

// stop ends the stream's Sends: one under way is cut short (its client
// stopped reading, or the server is stopping), its message left
// incomplete, so the status cannot follow it; otherwise the status that
// connect-go writes next gets the write timeout to be written in.
func (w *webStream) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if !w.sending {
		if w.rc != nil {
			_ = w.rc.SetWriteDeadline(time.Now().Add(w.writeTimeout)) // best effort: not every ResponseWriter has deadlines
		}
		return
	}
	if w.rc != nil {
		_ = w.rc.SetWriteDeadline(time.Now())
	}
	for w.sending {
		w.idle.Wait()
	}
}
