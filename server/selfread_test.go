package server_test

import (
	"runtime"
	"testing"

	"google.golang.org/grpc/codes"
)

// Each idle Subscribe stream costs the server one goroutine, its handler,
// which reads the commands: a goroutine's stack is most of an idle stream's
// memory. The client's side of each stream has a goroutine of its own in
// this process too.
func TestAnIdleStreamHasOneServerGoroutine(t *testing.T) {
	const streams = 50
	srv, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	publishText(t, ctx, c, "warm", "the connection is up") // its goroutines run before counting
	before := runtime.NumGoroutine()
	subs := make([]*subscriber, streams)
	for i := range subs {
		subs[i] = subscribe(t, ctx, c, "idle")
	}
	// Per stream: the server's handler and the client's stream watcher;
	// before, a reader goroutine too. Plus the connection's writer.
	if added := runtime.NumGoroutine() - before; added > 2*streams+1 {
		t.Errorf("%d streams added %d goroutines, want at most %d: one on each side per stream, and the connection's writer", streams, added, 2*streams+1)
	}
	// The handler, blocked in RecvMsg, still ends the stream with the
	// session's status, and delivery goes on meanwhile.
	publishText(t, ctx, c, "idle", "hello")
	for _, s := range subs {
		if m := s.next(); m.GetText() != "hello" {
			t.Fatalf("got %v, want hello", m)
		}
	}
	srv.Shutdown(ctx)
	for _, s := range subs {
		s.expectEnd(codes.Unavailable)
	}
}
