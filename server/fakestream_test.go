package server

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// fakeStream is a Subscribe stream without gRPC, served by a real Server and
// broker: the test feeds it commands, reads what the session sent, and may
// hold its SendMsg the way grpc-go's blocks when the client stops reading.
// Like grpc-go, it ends the stream's context when the handler returns, which
// unblocks a held Send with CANCELED.
type fakeStream struct {
	t       testing.TB
	ctx     context.Context
	cancel  context.CancelFunc
	reqs    chan *roomcastv1.SubscribeRequest
	sent    chan *roomcastv1.SubscribeResponse
	ss      *session // found in srv.live once the session greeted
	pending []*roomcastv1.Message

	mu      sync.Mutex
	held    chan struct{} // non-nil: SendMsg waits until it is closed or the stream ends
	stuck   bool          // SendMsg waits on held even after the stream ended
	onSend  func()        // called by SendMsg, when set, before it records what it sent
	blocked chan struct{} // receives each time a SendMsg starts waiting on held

	ended  chan struct{} // closed when the handler returned, with err set
	result error
}

// openFake opens a Subscribe stream on srv from the client connection
// numbered conn, and waits for its greeting. The stream is cancelled, and
// its handler awaited, when the test ends.
func openFake(t testing.TB, srv *Server, conn int) *fakeStream {
	t.Helper()
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: conn}
	ctx, cancel := context.WithCancel(peer.NewContext(context.Background(), &peer.Peer{Addr: addr}))
	f := &fakeStream{
		t: t, ctx: ctx, cancel: cancel,
		reqs:    make(chan *roomcastv1.SubscribeRequest),
		sent:    make(chan *roomcastv1.SubscribeResponse, 1024),
		blocked: make(chan struct{}, 1),
		ended:   make(chan struct{}),
	}
	go func() {
		f.result = srv.subscribe(f)
		cancel()
		close(f.ended)
	}()
	t.Cleanup(func() {
		f.release()
		cancel()
		<-f.ended
	})
	id := f.response().GetSession().GetSessionId()
	if id == "" {
		t.Fatal("first response is not a session event")
	}
	srv.live.Range(func(k, _ any) bool {
		if ss := k.(*session); ss.id == id {
			f.ss = ss
		}
		return f.ss == nil
	})
	if f.ss == nil {
		t.Fatalf("session %s is not live", id)
	}
	return f
}

// panicInRecv is the id of a command on which RecvMsg panics, as a bug in
// decoding it would.
const panicInRecv = "panic-in-recv"

func (f *fakeStream) Context() context.Context { return f.ctx }

func (f *fakeStream) RecvMsg(m any) error {
	select {
	case req := <-f.reqs:
		if req.GetId() == panicInRecv {
			panic("test: RecvMsg panics")
		}
		proto.Merge(m.(proto.Message), req)
		return nil
	case <-f.ctx.Done():
		return status.FromContextError(f.ctx.Err()).Err()
	}
}

// SendMsg encodes m with the server's codec, as grpc-go would, and records
// it.
func (f *fakeStream) SendMsg(m any) error {
	f.mu.Lock()
	held, stuck, onSend := f.held, f.stuck, f.onSend
	f.mu.Unlock()
	if held != nil {
		select {
		case f.blocked <- struct{}{}:
		default:
		}
		done := f.ctx.Done()
		if stuck {
			done = nil
		}
		select {
		case <-held:
		case <-done:
			return status.FromContextError(f.ctx.Err()).Err()
		}
	}
	if onSend != nil {
		onSend()
	}
	data, err := newCodec().Marshal(m)
	if err != nil {
		return err
	}
	resp := new(roomcastv1.SubscribeResponse)
	if err := proto.Unmarshal(data.Materialize(), resp); err != nil {
		return err
	}
	select {
	case f.sent <- resp: // first, so a Send that onSend ended still succeeds
		return nil
	default:
	}
	select {
	case f.sent <- resp:
		return nil
	case <-f.ctx.Done():
		return status.FromContextError(f.ctx.Err()).Err()
	}
}

// hold makes SendMsg block from now on, until release or the stream's end.
func (f *fakeStream) hold() { f.holdUntil(false) }

// holdPastEnd is hold, but a blocked Send returns only at release, even
// after the stream ended: grpc-go may wake the handler first and the Send
// later, and this makes that order certain.
func (f *fakeStream) holdPastEnd() { f.holdUntil(true) }

func (f *fakeStream) holdUntil(stuck bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stuck = stuck
	if f.held == nil {
		f.held = make(chan struct{})
	}
	select { // a signal left from an earlier hold
	case <-f.blocked:
	default:
	}
}

// release lets held and later Sends through.
func (f *fakeStream) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held != nil {
		close(f.held)
		f.held = nil
	}
}

// setOnSend makes SendMsg call fn before it records what it sent.
func (f *fakeStream) setOnSend(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onSend = fn
}

// waitBlocked waits until a SendMsg waits on hold.
func (f *fakeStream) waitBlocked() {
	f.t.Helper()
	select {
	case <-f.blocked:
	case <-time.After(10 * time.Second):
		f.t.Fatal("no Send blocked within 10s")
	}
}

// response returns the next response the session sent.
func (f *fakeStream) response() *roomcastv1.SubscribeResponse {
	f.t.Helper()
	select {
	case resp := <-f.sent:
		return resp
	case <-time.After(10 * time.Second):
		f.t.Fatal("no response within 10s")
		return nil
	}
}

// send hands req to the session's reader, without waiting for a reply.
func (f *fakeStream) send(req *roomcastv1.SubscribeRequest) {
	f.t.Helper()
	select {
	case f.reqs <- req:
	case <-time.After(10 * time.Second):
		f.t.Fatalf("command %v not read within 10s", req)
	}
}

// command sends req and returns its reply, keeping messages that arrive
// before it.
func (f *fakeStream) command(req *roomcastv1.SubscribeRequest) *roomcastv1.CommandReply {
	f.t.Helper()
	f.send(req)
	for {
		resp := f.response()
		if rep := resp.GetReply(); rep != nil {
			return rep
		}
		f.pending = append(f.pending, resp.GetBatch().GetMessages()...)
	}
}

// join joins room, failing the test if the reply is an error.
func (f *fakeStream) join(room string) {
	f.t.Helper()
	if rep := f.command(&roomcastv1.SubscribeRequest{Id: "join-" + room, Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: room}}}); rep.GetError() != nil {
		f.t.Fatalf("join %s: %v", room, rep.GetError())
	}
}

// next returns the next message delivered.
func (f *fakeStream) next() *roomcastv1.Message {
	f.t.Helper()
	for len(f.pending) == 0 {
		resp := f.response()
		if resp.GetBatch() == nil {
			f.t.Fatalf("got %v, want a batch", resp)
		}
		f.pending = resp.GetBatch().GetMessages()
	}
	m := f.pending[0]
	f.pending = f.pending[1:]
	return m
}

// expectOffsets checks that the next messages have offsets from..to.
func (f *fakeStream) expectOffsets(from, to uint64) {
	f.t.Helper()
	for off := from; off <= to; off++ {
		if m := f.next(); m.GetOffset() != off {
			f.t.Fatalf("session %s got offset %d, want %d", f.ss.id, m.GetOffset(), off)
		}
	}
}

// expectEnd waits for the handler to return and checks its status code.
// Every response sent before the end can still be read.
func (f *fakeStream) expectEnd(want codes.Code) *status.Status {
	f.t.Helper()
	select {
	case <-f.ended:
	case <-time.After(10 * time.Second):
		f.t.Fatalf("stream did not end within 10s, want %v", want)
	}
	st := status.Convert(f.result)
	if st.Code() != want {
		f.t.Fatalf("stream ended with %v, want %v", f.result, want)
	}
	return st
}

// sched returns the session's scheduling state.
func (f *fakeStream) sched() schedState {
	f.ss.mu.Lock()
	defer f.ss.mu.Unlock()
	return f.ss.sched
}

// newTestServer returns a server that serves only fake streams: its write
// timeout is far beyond any test, so only a detach moves a blocked Send.
func newTestServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	srv, err := New(append([]Option{WithWriteTimeout(time.Hour)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// publish publishes text to room and returns its offset.
func publish(t testing.TB, srv *Server, room, text string) uint64 {
	t.Helper()
	resp, err := srv.Publish(context.Background(), &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: text}})
	if err != nil {
		t.Fatalf("publish to %s: %v", room, err)
	}
	return resp.GetOffset()
}

// writers counts the server's running connection writers.
func writers(srv *Server) int {
	n := 0
	srv.writers.Range(func(_, _ any) bool { n++; return true })
	return n
}

// registered returns how many sessions c counts.
func registered(c *outConn) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("not %s within 10s", what)
		case <-tick.C:
		}
	}
}
