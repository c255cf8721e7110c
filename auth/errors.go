package auth

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// Sentinel errors. Every error returned by Authenticate, JWTVerifier.Verify
// and APIKeyStore.Verify wraps exactly one of these, so callers can branch
// with errors.Is. The full messages say what is wrong in words fit for the
// client; they never echo a token or secret and are always valid UTF-8.
var (
	// ErrMissingCredentials: no authorization value was sent and anonymous
	// access is not enabled.
	ErrMissingCredentials = errors.New("missing credentials")
	// ErrMalformedCredentials: the authorization value is not "Bearer
	// <token>", or the token is neither a well-formed JWT nor a well-formed
	// roomcast API key.
	ErrMalformedCredentials = errors.New("malformed credentials")
	// ErrInvalidSignature: the JWT's signature does not verify, or it names an
	// algorithm or key id that is not accepted.
	ErrInvalidSignature = errors.New("invalid signature")
	// ErrExpired: the JWT's exp is in the past (beyond the leeway).
	ErrExpired = errors.New("credentials expired")
	// ErrNotYetValid: the JWT's nbf or iat is in the future (beyond the
	// leeway).
	ErrNotYetValid = errors.New("credentials not yet valid")
	// ErrWrongIssuer: the JWT's iss is missing or not the expected issuer.
	ErrWrongIssuer = errors.New("wrong issuer")
	// ErrWrongAudience: the JWT's aud is missing or names none of the
	// expected audiences.
	ErrWrongAudience = errors.New("wrong audience")
	// ErrInvalidClaims: the JWT verifies but its claims are unusable: no sub,
	// no exp, or a roomcast claim that does not parse.
	ErrInvalidClaims = errors.New("invalid claims")
	// ErrInvalidAPIKey: the API key's id is unknown or its secret is wrong
	// (the two are deliberately indistinguishable).
	ErrInvalidAPIKey = errors.New("invalid API key")
	// ErrRevoked: a credential accepted earlier is no longer accepted since
	// Authenticator.Update, as Authenticator.Recheck reports.
	ErrRevoked = errors.New("credentials revoked")
)

// quote renders a client-supplied string for an error message: clipped to
// a readable length and quoted, which escapes anything that is not valid
// UTF-8 or not printable.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > max-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
			cut-- // do not split a character
		}
		s = s[:cut] + "..."
	}
	return strconv.Quote(s)
}
