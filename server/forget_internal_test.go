package server

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// statusSeen records, as a stream's status is written, whether its
// session's id still named a live session then.
type statusSeen struct {
	a       *access
	session string
	live    chan bool
}

func (w statusSeen) WriteStatus(*status.Status) error {
	_, ok := w.a.sessions.Load(w.session)
	w.live <- ok
	return nil
}

// unservedSession is a session of a new server that no handler serves:
// the test plays the handler's part.
func unservedSession(t *testing.T) (*Server, *session) {
	srv := newTestServer(t)
	ctx := context.Background()
	ss := &session{srv: srv, id: "S", stream: contextOnly{ctx: ctx}, end: make(chan error, 1)}
	ss.sub = srv.broker.NewSubscriber(ss.id)
	ss.identity = srv.access.identity(ctx)
	return srv, ss
}

// A session ended from outside its handler (its credential's expiry, a
// recheck) is forgotten before its client hears: a publisher naming the id
// it saw end is refused at once, not after the handler returns. Ending it
// under the session's lock, as recheck does, must not wait on that lock.
func TestASessionEndedFromOutsideIsForgottenBeforeItsStatus(t *testing.T) {
	srv, ss := unservedSession(t)
	ctx := ss.stream.Context()
	seen := statusSeen{a: srv.access, session: ss.id, live: make(chan bool, 1)}
	ss.writeStatus = seen
	ls := srv.access.addSession(ctx, ss.sub, ss.identity, ss.endWith)
	if err := srv.access.ownSession(ctx, ss.identity, "session_id", ss.id); err != nil {
		t.Fatalf("the open session: %v", err)
	}

	ended := make(chan struct{})
	go func() {
		defer close(ended)
		ls.mu.Lock() // as recheck holds it
		defer ls.mu.Unlock()
		ls.end(status.Error(codes.Unauthenticated, "expired"))
	}()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("ending a session under its lock did not return") // and leaves the lock held
	}
	defer srv.access.removeSession(ls)
	if <-seen.live {
		t.Error("the session's id was still live when its status was written")
	}
	if code := status.Code(srv.access.ownSession(ctx, ss.identity, "session_id", ss.id)); code != codes.PermissionDenied {
		t.Errorf("naming the ended session: %v, want PERMISSION_DENIED", code)
	}
	if _, ok := srv.access.sessionOf(ss.identity); !ok {
		t.Error("the credential no longer finds its session before the handler returned")
	}
}

// sessionsKept is a session directory that holds sessions as the Redis
// engine's does: ending one it does not hold does nothing. beforeRegister
// runs as a registration begins.
type sessionsKept struct {
	mu             sync.Mutex
	live           map[string]bool
	beforeRegister func()
}

func (d *sessionsKept) RegisterSession(_ context.Context, session, _ string) error {
	d.beforeRegister()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.live[session] = true
	return nil
}

func (d *sessionsKept) EndSession(session string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.live, session)
}

func (d *sessionsKept) SessionOwner(context.Context, string) (string, bool, error) {
	return "", false, nil
}

// A session ended while it registers in the cluster's directory (an
// operator's disconnect, or a recheck, finds it among the sessions first)
// leaves no entry there: forgetting it told the directory before the
// directory had it, so it is told again once registered.
func TestASessionEndedWhileItRegistersLeavesTheDirectory(t *testing.T) {
	srv, ss := unservedSession(t)
	ctx := ss.stream.Context()
	d := &sessionsKept{live: map[string]bool{}}
	d.beforeRegister = func() {
		for _, ls := range srv.access.sessionsWhere(func(*liveSession) bool { return true }) {
			ls.end(status.Error(codes.Unavailable, "disconnected by an operator"))
		}
	}
	srv.access.dir = d
	srv.access.removeSession(srv.access.addSession(ctx, ss.sub, ss.identity, ss.endWith))
	if d.live[ss.id] {
		t.Error("the ended session is still in the directory after its handler returned")
	}
}
