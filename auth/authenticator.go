package auth

import (
	"errors"
	"fmt"
	"strings"
)

// Authenticator turns an "authorization" metadata value into an Identity,
// accepting the credential kinds it was built with. It is safe for
// concurrent use.
type Authenticator struct {
	jwt  *JWTVerifier
	keys *APIKeyStore
	anon *Grants // nil: anonymous access is off
}

// Option configures NewAuthenticator.
type Option func(*authConfig)

type authConfig struct {
	jwt  *JWTVerifier
	keys *APIKeyStore
	anon *Grants
}

// WithJWT accepts JWTs that v verifies. The default is to refuse JWTs.
func WithJWT(v *JWTVerifier) Option { return func(c *authConfig) { c.jwt = v } }

// WithAPIKeys accepts the API keys of s. The default is to refuse API keys.
func WithAPIKeys(s *APIKeyStore) Option { return func(c *authConfig) { c.keys = s } }

// WithAnonymous admits calls that carry no "authorization" metadata at all,
// as an Identity with Subject AnonymousSubject, Method MethodAnonymous and
// grants g. A call that carries a credential that fails is still refused:
// it never falls back to anonymous. The default is off: a call without
// credentials fails with ErrMissingCredentials.
func WithAnonymous(g Grants) Option { return func(c *authConfig) { c.anon = &g } }

// NewAuthenticator returns an authenticator for the credential kinds opts
// enable. At least one of WithJWT, WithAPIKeys and WithAnonymous is needed.
func NewAuthenticator(opts ...Option) (*Authenticator, error) {
	var c authConfig
	for _, o := range opts {
		o(&c)
	}
	if c.jwt == nil && c.keys == nil && c.anon == nil {
		return nil, errors.New("auth: the authenticator accepts nothing: give WithJWT, WithAPIKeys or WithAnonymous")
	}
	return &Authenticator{jwt: c.jwt, keys: c.keys, anon: c.anon}, nil
}

// Authenticate checks an "authorization" metadata value, "Bearer <token>"
// (the scheme is case-insensitive), and returns the caller's identity. An
// empty value means no credentials: the anonymous identity if WithAnonymous
// is on, else an error wrapping ErrMissingCredentials. Other errors wrap the
// sentinel errors of this package and are fit to show the client.
func (a *Authenticator) Authenticate(authorization string) (*Identity, error) {
	if authorization == "" {
		return a.anonymous()
	}
	scheme, token, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return nil, errNotBearer
	}
	return a.AuthenticateToken(strings.TrimSpace(token))
}

var errNotBearer = fmt.Errorf(`%w: the authorization value must be "Bearer <token>"`, ErrMalformedCredentials)

// AuthenticateToken checks a bearer token, without the "Bearer " prefix: an
// API key if it starts with APIKeyPrefix, else a JWT.
func (a *Authenticator) AuthenticateToken(token string) (*Identity, error) {
	switch {
	case token == "":
		return nil, fmt.Errorf("%w: the bearer token is empty", ErrMalformedCredentials)
	case len(token) > MaxTokenLen:
		return nil, fmt.Errorf("%w: the bearer token is longer than %d bytes", ErrMalformedCredentials, MaxTokenLen)
	case strings.HasPrefix(token, APIKeyPrefix):
		if a.keys == nil {
			return nil, fmt.Errorf("%w: API keys are not accepted by this server", ErrInvalidAPIKey)
		}
		return a.keys.Verify(token)
	case a.jwt == nil:
		return nil, fmt.Errorf("%w: the bearer token is not an API key (%s...), and JWTs are not accepted by this server", ErrMalformedCredentials, APIKeyPrefix)
	}
	return a.jwt.Verify(token)
}

func (a *Authenticator) anonymous() (*Identity, error) {
	if a.anon == nil {
		return nil, fmt.Errorf(`%w: send "authorization: Bearer <token>" metadata`, ErrMissingCredentials)
	}
	return &Identity{Subject: AnonymousSubject, Method: MethodAnonymous, Grants: *a.anon}, nil
}
