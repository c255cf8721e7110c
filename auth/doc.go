// Package auth is roomcast's authentication and per-room permission layer.
//
// A caller presents a credential in the "authorization" gRPC metadata as
// "Bearer <token>", where the token is either a JWT (verified by a
// JWTVerifier) or a static API key (checked against an APIKeyStore). An
// Authenticator turns that value into an Identity: a subject, the Grants
// that say which rooms it may publish to, subscribe to and see the presence
// of, and when the credential expires.
//
// # How the server uses it
//
// roomcast's server (package server) installs Interceptors, which
// authenticate every call but health checking and reflection and put the
// Identity in the call's context. Its handlers read it with FromContext and
// check each room with Identity.Allows, wording the PERMISSION_DENIED
// status themselves. A Subscribe stream ends when the Identity's Expiry
// passes, unless the client sends a refresh command, whose token the server
// checks with Authenticator.AuthenticateToken. A RateLimiter bounds how
// often each identity may publish, and RateLimitError is the status of a
// publish past it.
//
// Authorize does what those handlers do in one call, FromContext then
// Allows, for the handlers of services of your own; roomcast's server does
// not use it, since without an authenticator it lets every call through,
// where Authorize would refuse a call that carries no Identity.
//
// # Room patterns
//
// Grants name rooms by Pattern: an exact room name ("chat.lobby"), or a
// dotted pattern in which "*" stands for exactly one segment ("chat.*"
// matches "chat.lobby" but not "chat.a.b") and a final ">" stands for one or
// more segments ("chat.>" matches both; ">" alone matches every room).
//
// # Errors
//
// Every credential failure wraps one of the sentinel errors (ErrMissingCredentials,
// ErrMalformedCredentials, ErrInvalidSignature, ErrExpired, ErrNotYetValid,
// ErrWrongIssuer, ErrWrongAudience, ErrInvalidClaims, ErrInvalidAPIKey,
// and ErrRevoked from Recheck), so callers can tell them apart with
// errors.Is. Their messages are valid UTF-8,
// never contain a token or secret, and are meant to be shown to the client.
//
// # Concurrency
//
// Authenticator, JWTVerifier, APIKeyStore, Interceptors and RateLimiter are
// safe for concurrent use once constructed. An Authenticator's keys can be
// replaced while it serves (Authenticator.Update, after reloading key files
// with LoadAPIKeys and NewJWTVerifier); the others never change. Pattern, Grants and Identity are
// values that are never changed after construction by this package; callers
// that share them must not modify them either.
package auth
