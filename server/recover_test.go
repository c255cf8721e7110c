package server

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A writer that panics in one session's turn, in the middle of its first
// pass, has already collected the batches of the sessions before it: its
// successor sends them. Only the panicking stream ends, with INTERNAL; the
// panic is counted and logged with its stack.
func TestAPanickingWriterLeavesItsListsToASuccessor(t *testing.T) {
	trap := newTurnTrap(t)
	var logs lockedBuffer
	srv := newTestServer(t, withTurnHook(trap.hook), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	first, second, victim := openFake(t, srv, 1), openFake(t, srv, 1), openFake(t, srv, 1)
	staller := openFake(t, srv, 1)
	c := victim.ss.conn
	// Joined in this order, they park in room r in this order, and a publish
	// queues them so.
	first.join("r")
	second.join("r")
	victim.join("r")

	// Hold the writer in a turn of staller's, not in a Send, so it is not
	// retired, while the three queue up and victim gets a command.
	waiting := trap.stall(staller.ss.id)
	staller.send(leave("x"))
	<-waiting
	off := publish(t, srv, "r", "1")
	trap.panicOn(victim.ss.id)
	victim.send(leave("y"))
	waitFor(t, "victim's command was read", func() bool { return victim.ss.pending.Load() == 1 })
	trap.letGo()

	// The next pass collects first's and second's batches, then gives victim,
	// which is busy, a whole turn, which panics.
	victim.expectEnd(codes.Internal)
	first.expectOffsets(off, off)
	second.expectOffsets(off, off)
	if rep := staller.response().GetReply(); rep.GetId() != "leave-x" {
		t.Errorf("staller got %v, want the reply to its command", rep)
	}
	expectFinished(t, victim, c, 3)
	if n := srv.panics.Load(); n != 1 {
		t.Errorf("%d panics counted, want 1", n)
	}
	for _, want := range []string{"test: a turn panics", "session=" + victim.ss.id, "(*session).turn"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log does not say %q:\n%s", want, logs.String())
		}
	}

	waitFor(t, "the panicked writer exited", func() bool { return writers(srv) == 1 })
	off = publish(t, srv, "r", "2")
	first.expectOffsets(off, off)
	second.expectOffsets(off, off)
}

// A retired writer, serving its one session alone, that panics ends only
// that session: the connection's current writer goes on.
func TestAPanicOnARetiredWriterEndsOnlyItsSession(t *testing.T) {
	trap := newTurnTrap(t)
	srv := newTestServer(t, withTurnHook(trap.hook), WithLogger(slog.New(slog.DiscardHandler)))
	victim, other := openFake(t, srv, 1), openFake(t, srv, 1)
	victim.join("r")
	other.join("r")
	c := victim.ss.conn

	victim.hold()
	first := publish(t, srv, "r", "1")
	victim.waitBlocked()
	waitFor(t, "the blocked Send detached", func() bool { return srv.detached.Load() >= 1 })
	trap.panicOn(victim.ss.id)
	victim.send(leave("x")) // a whole turn, on the retired writer, once the Send returns
	waitFor(t, "victim's command was read", func() bool { return victim.ss.pending.Load() == 1 })
	victim.release()

	victim.expectEnd(codes.Internal)
	expectFinished(t, victim, c, 1)
	waitFor(t, "the retired writer exited", func() bool { return writers(srv) == 1 })
	second := publish(t, srv, "r", "2")
	other.expectOffsets(first, second)
	if n := srv.panics.Load(); n != 1 {
		t.Errorf("%d panics counted, want 1", n)
	}
}

// A panic in a stream's reader ends that stream with INTERNAL; the
// connection's other stream goes on.
func TestAPanicInTheReaderEndsOnlyItsStream(t *testing.T) {
	srv := newTestServer(t, WithLogger(slog.New(slog.DiscardHandler)))
	victim, other := openFake(t, srv, 1), openFake(t, srv, 1)
	victim.join("r")
	other.join("r")
	c := victim.ss.conn

	victim.send(&roomcastv1.SubscribeRequest{Id: panicInRecv})
	st := victim.expectEnd(codes.Internal)
	if !strings.Contains(st.Message(), "r=0") {
		t.Errorf("status %q does not name the last offset sent in r", st.Message())
	}
	expectFinished(t, victim, c, 1)
	off := publish(t, srv, "r", "1")
	other.expectOffsets(off, off)
	if n := srv.panics.Load(); n != 1 {
		t.Errorf("%d panics counted, want 1", n)
	}
}

func leave(room string) *roomcastv1.SubscribeRequest {
	return &roomcastv1.SubscribeRequest{Id: "leave-" + room, Command: &roomcastv1.SubscribeRequest_Leave{Leave: &roomcastv1.LeaveCommand{Room: room}}}
}

// turnTrap is a turn hook: it holds one session's next turn until the test
// lets it go, and makes another session's turns panic.
type turnTrap struct {
	mu      sync.Mutex
	stalled string        // the session whose next turn waits
	waiting chan struct{} // closed once that turn waits
	panicky string        // the session whose turns panic

	resume     chan struct{} // closed to let the held turn go on
	resumeOnce sync.Once
}

// newTurnTrap returns a trap that lets a held turn go when the test ends.
func newTurnTrap(t testing.TB) *turnTrap {
	tt := &turnTrap{resume: make(chan struct{})}
	t.Cleanup(tt.letGo)
	return tt
}

func (tt *turnTrap) hook(id string) {
	tt.mu.Lock()
	stall, boom, waiting := id == tt.stalled, id == tt.panicky, tt.waiting
	if stall {
		tt.stalled = ""
	}
	tt.mu.Unlock()
	if boom {
		panic("test: a turn panics")
	}
	if stall {
		close(waiting)
		<-tt.resume
	}
}

// stall makes session id's next turn wait until letGo; the channel it
// returns is closed once the turn waits.
func (tt *turnTrap) stall(id string) (waiting <-chan struct{}) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	tt.stalled, tt.waiting = id, make(chan struct{})
	return tt.waiting
}

// letGo lets the held turn go on.
func (tt *turnTrap) letGo() { tt.resumeOnce.Do(func() { close(tt.resume) }) }

// panicOn makes every turn of session id panic.
func (tt *turnTrap) panicOn(id string) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	tt.panicky = id
}

// lockedBuffer is a bytes.Buffer safe for the server's goroutines to log to.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
