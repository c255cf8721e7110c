package server

import (
	"context"
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

// A session ended from outside its handler (its credential's expiry, a
// recheck) is forgotten before its client hears: a publisher naming the id
// it saw end is refused at once, not after the handler returns. Ending it
// under the session's lock, as recheck does, must not wait on that lock.
func TestASessionEndedFromOutsideIsForgottenBeforeItsStatus(t *testing.T) {
	srv := newTestServer(t)
	ctx := context.Background()
	ss := &session{srv: srv, id: "S", stream: contextOnly{ctx: ctx}, end: make(chan error, 1)}
	ss.sub = srv.broker.NewSubscriber(ss.id)
	ss.identity = srv.access.identity(ctx)
	seen := statusSeen{a: srv.access, session: ss.id, live: make(chan bool, 1)}
	ss.writeStatus = seen
	ls := srv.access.addSession(ctx, ss.sub, ss.identity, ss.endWith)
	defer srv.access.removeSession(ls)
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
		t.Fatal("ending a session under its lock did not return")
	}
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
