package server

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RecheckCredentials checks the credential of every open Subscribe stream
// against what the server's authenticator accepts now, after
// auth.Authenticator.Update took reloaded keys: a stream whose credential
// is no longer accepted (its API key was removed from the key file, say)
// ends with UNAUTHENTICATED, and one whose API key now has another subject
// or other grants ends with UNAVAILABLE, so that its client reconnects and
// gets them. Streams authenticated with a JWT go on until the token
// expires. It returns how many streams it ended for each reason. Without
// an authenticator it does nothing. It is safe for concurrent use.
func (s *Server) RecheckCredentials() (revoked, changed int) {
	if s.access.authn == nil {
		return 0, 0
	}
	s.access.sessions.Range(func(_, v any) bool {
		switch s.access.recheck(v.(*liveSession)) {
		case recheckRevoked:
			revoked++
		case recheckChanged:
			changed++
		}
		return true
	})
	return revoked, changed
}

// Outcomes of recheck.
const (
	recheckStands = iota
	recheckRevoked
	recheckChanged
)

// recheck checks ls's credential against the authenticator's current keys,
// and ends the stream if they no longer accept it as it is.
func (a *access) recheck(ls *liveSession) int {
	if a.authn == nil {
		return recheckStands
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	id, err := a.authn.Recheck(ls.identity)
	switch {
	case err != nil:
		ls.end(status.Errorf(codes.Unauthenticated, "%v; this stream ends: reconnect with a valid credential", err))
		return recheckRevoked
	case id != ls.identity:
		ls.end(status.Error(codes.Unavailable, "this stream's API key has another subject or other grants on the server now: reconnect to use it as it is"))
		return recheckChanged
	}
	return recheckStands
}
