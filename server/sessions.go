package server

import (
	"context"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/broker"
)

// liveSession is what access keeps of an open Subscribe stream.
type liveSession struct {
	id    string
	owner string          // who may name the session in a publish; see ownerOf
	peer  string          // the client's address, for the log
	end   func(err error) // ends the stream with err; safe from any goroutine
	sub   *broker.Subscriber
	began time.Time // when the stream opened

	// Held while the credential is replaced or checked, so that a refresh
	// and a recheck after the authenticator's keys changed see each other:
	// see credentials.go.
	mu       sync.Mutex
	identity *auth.Identity // the stream's credential, as refreshed
}

// addSession records an open session, sub's: the stream's context and
// identity tell who owns it, and end ends it. The credential is checked once more:
// the keys may have changed since it was authenticated, before the session
// was there for RecheckCredentials to find.
func (a *access) addSession(ctx context.Context, sub *broker.Subscriber, id *auth.Identity, end func(error)) *liveSession {
	session := sub.ID()
	ls := &liveSession{id: session, owner: ownerOf(ctx, id), peer: peerAddr(ctx), end: end, identity: id, sub: sub, began: time.Now()}
	a.sessions.Store(session, ls)
	a.byIdentity.Store(id, ls)
	a.register(ctx, ls)
	// Ended while it registered (an operator's disconnect, a recheck after
	// a reload): forgetSession told the directory before it knew the id.
	if _, ok := a.sessions.Load(session); !ok && a.dir != nil {
		a.dir.EndSession(session)
	}
	a.recheck(ls)
	return ls
}

// forgetSession makes session's id name no live session any more, here
// and in the engine's directory. A stream ended from outside its handler
// (an expiry, a recheck) is forgotten before its client hears, so that an
// id the client saw end is refused at once. It takes no session's lock:
// recheck ends a stream while holding one. Forgetting twice is harmless.
func (a *access) forgetSession(session string) {
	if _, ok := a.sessions.LoadAndDelete(session); ok && a.dir != nil {
		a.dir.EndSession(session)
	}
}

// removeSession forgets ls once its handler has returned, and with it the
// credential by which its commands found it.
func (a *access) removeSession(ls *liveSession) {
	a.forgetSession(ls.id)
	ls.mu.Lock()
	a.byIdentity.Delete(ls.identity)
	ls.mu.Unlock()
}

// sessionOf returns the live session whose current credential is id, if any.
// The identity a handler holds tells a stream's command from a call.
func (a *access) sessionOf(id *auth.Identity) (*liveSession, bool) {
	v, ok := a.byIdentity.Load(id)
	if !ok {
		return nil, false
	}
	return v.(*liveSession), true
}

// setIdentity makes id the credential of ls, after a refresh. Caller holds
// ls.mu.
func (a *access) setIdentity(ls *liveSession, id *auth.Identity) {
	a.byIdentity.Delete(ls.identity)
	ls.identity = id
	a.byIdentity.Store(id, ls)
}

// refusedCommand logs err, the refusal of a stream's command, with the
// stream's client address; id is the stream's credential, and a caller's
// that is no stream's is not logged here.
func (a *access) refusedCommand(id *auth.Identity, command string, err error) {
	if ls, ok := a.sessionOf(id); ok {
		a.log.refused(err, ls.peer, "command", command, "session", ls.id, "subject", id.Subject, "credential", string(id.Method))
	}
}

// ownerOf is who owns the sessions a caller opens, and so who may name them
// in a publish: a credential's kind and subject, or for anonymous callers
// (a server without an authenticator, or one admitting anonymous calls),
// who all share one subject, the client's IP address.
func ownerOf(ctx context.Context, id *auth.Identity) string {
	if id.Method == auth.MethodAnonymous {
		return string(auth.MethodAnonymous) + "@" + peerHost(ctx)
	}
	return string(id.Method) + ":" + id.Subject
}

// peerHost is the client's IP address, or its whole address when it has no
// port (a Unix socket); "" when unknown.
func peerHost(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	addr := p.Addr.String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// ownSession checks that a session id a publisher gives (field is
// session_id or exclude_session) names a live session of its own, or any
// live session for an admin, on this node or, with an engine that keeps
// sessions, on any node of the cluster (one round trip, only for an id
// that is not this node's). An ended session's id, and another owner's,
// get the same PERMISSION_DENIED: telling them apart would let any caller
// learn whether a session whose id it saw (every message carries its
// publisher's) is still open.
func (a *access) ownSession(ctx context.Context, id *auth.Identity, field, session string) error {
	if session == "" {
		return nil
	}
	var owner string
	if v, ok := a.sessions.Load(session); ok {
		owner = v.(*liveSession).owner
	} else {
		var err error
		if owner, err = a.remoteOwner(ctx, session); err != nil {
			return err
		}
	}
	if owner != "" && (id.IsAdmin() || owner == ownerOf(ctx, id)) {
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "%s %q is not one of your open Subscribe sessions: name the session id of your own stream, which changes when it reconnects", field, session)
}
