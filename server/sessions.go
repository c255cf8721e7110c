package server

import (
	"context"
	"net"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
)

// liveSession is what access keeps of an open Subscribe stream.
type liveSession struct {
	owner string // who may name the session in a publish; see ownerOf
}

// addSession records an open session: the stream's context and identity
// tell who owns it.
func (a *access) addSession(ctx context.Context, session string, id *auth.Identity) {
	a.sessions.Store(session, &liveSession{owner: ownerOf(ctx, id)})
}

// removeSession forgets a session once its stream has ended: its id names
// no live session any more.
func (a *access) removeSession(session string) { a.sessions.Delete(session) }

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
// live session for an admin. An ended session's id, and another owner's,
// get the same PERMISSION_DENIED: telling them apart would let any caller
// learn whether a session whose id it saw (every message carries its
// publisher's) is still open.
func (a *access) ownSession(ctx context.Context, id *auth.Identity, field, session string) error {
	if session == "" {
		return nil
	}
	v, ok := a.sessions.Load(session)
	if ok && (id.IsAdmin() || v.(*liveSession).owner == ownerOf(ctx, id)) {
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "%s %q is not one of your open Subscribe sessions: name the session id of your own stream, which changes when it reconnects", field, session)
}
