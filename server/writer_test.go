package server

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// The writer against fake streams: the broker is real, only gRPC is not.
// Each test opens two or more streams from one client connection, so they
// share a writer.

// A Send that blocks gets its writer retired, and a new writer serves the
// connection's other streams meanwhile: the other stream receives a message
// published after the block, which nothing but a new writer can send.
func TestBlockedSendRetiresTheWriterForTheOthers(t *testing.T) {
	srv := newTestServer(t)
	blocked, other := openFake(t, srv, 1), openFake(t, srv, 1)
	if blocked.ss.conn != other.ss.conn {
		t.Fatal("the two streams are not on one connection")
	}
	blocked.join("r")
	other.join("r")

	blocked.hold()
	first := publish(t, srv, "r", "1")
	blocked.waitBlocked()
	second := publish(t, srv, "r", "2")
	other.expectOffsets(first, second)
	if d := srv.WriterStats().Detaches; d < 1 {
		t.Errorf("WriterStats: detached %d times, want at least once", d)
	}
	if n := writers(srv); n < 2 {
		t.Errorf("%d writers while a Send is blocked, want the retired one and its successor", n)
	}
	if st := blocked.sched(); st != schedHeld && st != schedWoken {
		t.Errorf("blocked session is %v, want held by its retired writer", st)
	}

	blocked.release()
	blocked.expectOffsets(first, second)
}

// Once its Send returns, the retired writer serves its one session alone
// until it has nothing to send, then releases it parked and exits: the
// session's next message comes from the connection's current writer, now
// the only one.
func TestDetachedSessionReturnsToTheSharedWriter(t *testing.T) {
	srv := newTestServer(t)
	blocked, other := openFake(t, srv, 1), openFake(t, srv, 1)
	blocked.join("r")
	other.join("r")
	c := blocked.ss.conn

	blocked.hold()
	first := publish(t, srv, "r", "1")
	blocked.waitBlocked()
	second := publish(t, srv, "r", "2") // for the retired writer to serve alone
	other.expectOffsets(first, second)

	blocked.release()
	blocked.expectOffsets(first, second)
	waitFor(t, "the retired writer exited", func() bool { return writers(srv) == 1 })
	if st := blocked.sched(); st != schedParked {
		t.Fatalf("session is %v after its retired writer exited, want parked", st)
	}
	c.mu.Lock()
	current := c.writer
	c.mu.Unlock()
	if current == nil {
		t.Fatal("the connection has no writer")
	}

	// Parked, with the current writer the only one: that writer serves it.
	third := publish(t, srv, "r", "3")
	blocked.expectOffsets(third, third)
	other.expectOffsets(third, third)
}

// Shutdown ends every stream with UNAVAILABLE once it has sent what it
// holds, a stream on a blocked Send too, and the status names the last
// offset sent.
func TestShutdownDrainsWhatSessionsHold(t *testing.T) {
	srv := newTestServer(t)
	blocked, other := openFake(t, srv, 1), openFake(t, srv, 1)
	blocked.join("r")
	other.join("r")

	blocked.hold()
	first := publish(t, srv, "r", "1")
	blocked.waitBlocked()
	publish(t, srv, "r", "2")
	last := publish(t, srv, "r", "3")
	waitFor(t, "the blocked Send detached", func() bool { return srv.detached.Load() >= 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Shutdown(ctx) }()

	st := other.expectEnd(codes.Unavailable)
	other.expectOffsets(first, last)
	if !strings.Contains(st.Message(), "r=3") {
		t.Errorf("status %q does not name offset 3 as sent in r", st.Message())
	}

	blocked.release()
	st = blocked.expectEnd(codes.Unavailable)
	blocked.expectOffsets(first, last)
	if !strings.Contains(st.Message(), "r=3") {
		t.Errorf("status %q does not name offset 3 as sent in r", st.Message())
	}
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// A stream that ends while a writer holds it, blocked in its Send, is left
// to that writer: the handler's close does not finish it, the writer does
// once its Send returns, exactly once. The session leaves its rooms and its
// connection, whose other stream goes on.
func TestSessionEndingWhileAWriterHoldsIt(t *testing.T) {
	srv := newTestServer(t)
	gone, other := openFake(t, srv, 1), openFake(t, srv, 1)
	gone.join("r")
	other.join("r")
	c := gone.ss.conn

	gone.holdPastEnd()
	first := publish(t, srv, "r", "1")
	gone.waitBlocked()
	gone.cancel() // the client went away
	gone.expectEnd(codes.Canceled)
	if st := gone.sched(); st != schedClosing {
		t.Errorf("session is %v after its handler returned, want closing: its writer still holds it", st)
	}
	if n := registered(c); n != 2 {
		t.Errorf("connection counts %d sessions while a writer holds the ended one, want 2", n)
	}

	gone.release()
	expectFinished(t, gone, c, 1)
	second := publish(t, srv, "r", "2")
	other.expectOffsets(first, second)
	if n := registered(c); n != 1 {
		t.Errorf("connection counts %d sessions, want 1", n)
	}
}

// A stream whose handler returns while the shared writer is in its Send:
// the Send succeeds, but the shut gate turns it into an error, and the
// writer finishes the session instead of parking it.
func TestSessionEndingDuringItsSendOnTheSharedWriter(t *testing.T) {
	srv := newTestServer(t)
	gone, other := openFake(t, srv, 1), openFake(t, srv, 1)
	gone.join("r")
	other.join("r")
	c := gone.ss.conn

	gone.setOnSend(func() {
		gone.cancel()
		<-gone.ended
	})
	first := publish(t, srv, "r", "1")
	gone.expectEnd(codes.Canceled)
	expectFinished(t, gone, c, 1)

	other.expectOffsets(first, first)
	second := publish(t, srv, "r", "2")
	other.expectOffsets(second, second)
	if n := registered(c); n != 1 {
		t.Errorf("connection counts %d sessions, want 1", n)
	}
}

// expectFinished waits until f's session was finished, leaving c with left
// sessions, and checks that it is closed and in no room.
func expectFinished(t *testing.T, f *fakeStream, c *outConn, left int) {
	t.Helper()
	waitFor(t, "the session was finished", func() bool { return registered(c) == left })
	if st := f.sched(); st != schedClosed {
		t.Errorf("session is %v, want closed", st)
	}
	if n := f.ss.sub.Rooms(); n != 0 { // read after finish: registered took c.mu after it
		t.Errorf("finished session in %d rooms", n)
	}
}

// The scheduling transitions drawn in schedule.go, driven by hand on a
// connection whose writer never runs: the test plays it.
func TestSessionSchedulingFollowsTheDiagram(t *testing.T) {
	srv := newTestServer(t)
	c := &outConn{srv: srv, key: "test"}
	c.writer = &connWriter{c: c} // so that no wake starts one
	newSession := func() *session {
		ss := &session{srv: srv, id: "S", conn: c, end: make(chan error, 1)}
		ss.sub = srv.broker.NewNotifiedSubscriber(ss.id, ss.wake)
		c.sessions++
		return ss
	}
	ss := newSession()
	expect := func(want schedState, ready int) {
		t.Helper()
		if ss.sched != want {
			t.Fatalf("session is %v, want %v", ss.sched, want)
		}
		if n := c.ready.len(); n != ready {
			t.Fatalf("ready list holds %d, want %d", n, ready)
		}
	}
	take := func() {
		t.Helper()
		if c.ready.pop() != ss || !ss.claim() {
			t.Fatal("could not claim the queued session")
		}
	}

	ss.wake()
	expect(schedQueued, 1)
	ss.wake()
	expect(schedQueued, 1) // at most once in the ready list
	take()
	expect(schedHeld, 0)
	ss.wake()
	expect(schedWoken, 0)
	if ss.release(false, nil, false) {
		t.Fatal("a shared writer was told to serve again")
	}
	expect(schedQueued, 1) // woken counts as more
	take()
	ss.release(false, nil, false)
	expect(schedParked, 0)

	ss.wake()
	take()
	if !ss.release(true, nil, true) {
		t.Fatal("a retired writer was not told to serve again")
	}
	expect(schedHeld, 0)
	ss.release(false, nil, true)
	expect(schedParked, 0)

	ss.wake()
	ss.close()
	expect(schedClosed, 1)
	if c.sessions != 0 {
		t.Fatal("close of a queued session did not finish it")
	}
	if c.ready.pop() != ss || ss.claim() {
		t.Fatal("a closed session was claimed")
	}
	ss.wake()
	expect(schedClosed, 0)

	ss = newSession()
	ss.wake()
	take()
	ss.close()
	expect(schedClosing, 0)
	if c.sessions != 1 {
		t.Fatal("close finished a session a writer holds")
	}
	ss.wake()
	expect(schedClosing, 0)
	ss.release(true, nil, false)
	expect(schedClosed, 0)
	if c.sessions != 0 {
		t.Fatal("release did not finish a closing session")
	}

	ss = newSession()
	ss.wake()
	take()
	failed := errors.New("failed")
	ss.release(true, failed, true)
	expect(schedClosed, 0)
	if c.sessions != 0 {
		t.Fatal("release with an error did not finish the session")
	}
	if err := <-ss.end; err != failed {
		t.Fatalf("session ended with %v, want the turn's error", err)
	}
}
