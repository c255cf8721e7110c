package server_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/roomcast/roomcast/server"
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

// A connection's writer exits once its streams have been idle for a while,
// and the next message starts another.
func TestAnIdleConnectionsWriterExitsAndComesBack(t *testing.T) {
	_, addr := start(t, server.WithWriterIdlePeriod(20*time.Millisecond))
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "quiet")
	waitForWriters(t, 0)
	publishText(t, ctx, c, "quiet", "still there")
	if m := sub.next(); m.GetText() != "still there" {
		t.Fatalf("got %v, want the message published after the writer exited", m)
	}
	waitForWriters(t, 0) // the new writer exits too
}

// waitForWriters polls until n connection writers run, for up to the
// test's deadline.
func waitForWriters(t *testing.T, n int) {
	t.Helper()
	ctx := testCtx(t)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	buf := make([]byte, 1<<20)
	for {
		got := strings.Count(string(buf[:runtime.Stack(buf, true)]), "server.(*connWriter).run(")
		if got == n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d connection writers run, want %d", got, n)
		case <-poll.C:
		}
	}
}

// A writer that has only given turns (a greeting, a join's reply) exits as
// soon as nothing is ready, without waiting the idle period: when many
// streams open at once, those writers would otherwise exit together later,
// each leaving a freed stack among the streams' handlers' (internal/idlemem
// measures it). A writer that sent messages waits for more as before.
func TestAWriterThatOnlyGreetedExitsAtOnce(t *testing.T) {
	_, addr := start(t, server.WithWriterIdlePeriod(time.Hour))
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "greeted")
	waitForWriters(t, 0)
	publishText(t, ctx, c, "greeted", "after the greeting's writer exited")
	if m := sub.next(); m.GetText() != "after the greeting's writer exited" {
		t.Fatalf("got %v, want the message published after the writer exited", m)
	}
	waitForWriters(t, 1) // it sent a batch: it waits for the next
}
