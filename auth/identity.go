package auth

import (
	"context"
	"time"
)

// Method says how an identity was authenticated.
type Method string

// The authentication methods.
const (
	// MethodJWT: a JWT verified by a JWTVerifier.
	MethodJWT Method = "jwt"
	// MethodAPIKey: an API key checked by an APIKeyStore.
	MethodAPIKey Method = "apikey"
	// MethodAnonymous: no credentials, admitted by WithAnonymous.
	MethodAnonymous Method = "anonymous"
)

// AnonymousSubject is the Subject of identities admitted by WithAnonymous.
const AnonymousSubject = "anonymous"

// Identity is an authenticated caller. The Authenticator returns a new
// Identity for every call; it is never modified afterwards, so it may be read
// concurrently (callers must not modify it, nor the slices of its Grants).
type Identity struct {
	// Subject names the caller: the JWT's sub, the API key entry's subject
	// (by default "apikey:" and its id), or AnonymousSubject.
	Subject string
	// Method is how the caller was authenticated.
	Method Method
	// KeyID is the JWT's kid header or the API key's id; empty otherwise.
	KeyID string
	// Grants is what the caller may do.
	Grants Grants
	// Expiry is when the credential stops being valid (the JWT's exp), or
	// the zero time for credentials that do not expire (API keys and
	// anonymous access).
	Expiry time.Time

	gen uint64  // the Authenticator's set of credentials that accepted it; 0 if none did
	key *apiKey // the API key entry that verified it
}

// Allows reports whether the identity may use perm in room. A nil Identity
// is allowed nothing.
func (id *Identity) Allows(perm Permission, room string) bool {
	return id != nil && id.Grants.Allows(perm, room)
}

// IsAdmin reports whether the identity's grants have Admin, which allows
// the server's AdminService. A nil Identity is not an admin.
func (id *Identity) IsAdmin() bool { return id != nil && id.Grants.Admin }

type identityKey struct{}

// NewContext returns a copy of ctx that carries id, as the interceptors do
// for every authenticated call. Tests of handlers can use it to fake an
// authenticated call.
func NewContext(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the identity that NewContext (or an interceptor) put
// in ctx, and whether there was one.
func FromContext(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(*Identity)
	return id, ok && id != nil
}
