package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Authenticator turns an "authorization" metadata value into an Identity,
// accepting the credential kinds it was built with. Update replaces them
// while it serves. It is safe for concurrent use.
type Authenticator struct {
	state  atomic.Pointer[authState]
	update sync.Mutex // serializes Update
}

// authState is one set of accepted credentials; never changed once built.
type authState struct {
	jwt  *JWTVerifier
	keys *APIKeyStore
	anon *Grants // nil: anonymous access is off
	gen  uint64  // counts the sets: 1 for NewAuthenticator's, one more for each Update
}

// Option configures NewAuthenticator and Update.
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
	st, err := newState(opts)
	if err != nil {
		return nil, err
	}
	a := &Authenticator{}
	st.gen = 1
	a.state.Store(st)
	return a, nil
}

func newState(opts []Option) (*authState, error) {
	var c authConfig
	for _, o := range opts {
		o(&c)
	}
	if c.jwt == nil && c.keys == nil && c.anon == nil {
		return nil, errors.New("auth: the authenticator accepts nothing: give WithJWT, WithAPIKeys or WithAnonymous")
	}
	return &authState{jwt: c.jwt, keys: c.keys, anon: c.anon}, nil
}

// Update replaces everything the authenticator accepts with what opts
// give, as NewAuthenticator would: to take a reloaded key file, give it the
// new APIKeyStore along with the other options it was built with. The swap
// is atomic: each credential is checked against the old set or the new one,
// never a mix. On error the authenticator is left as it was.
//
// Identities already authenticated are not affected; Recheck tells which
// of them the new set no longer accepts.
func (a *Authenticator) Update(opts ...Option) error {
	st, err := newState(opts)
	if err != nil {
		return err
	}
	a.update.Lock()
	defer a.update.Unlock()
	st.gen = a.state.Load().gen + 1
	a.state.Store(st)
	return nil
}

// Recheck checks an identity this authenticator returned against what it
// accepts now, after Update, for a credential that stays in use, such as a
// stream's. It returns id itself when it stands as it is; a new Identity
// when the credential is still accepted but means something else (an API
// key whose entry has another subject or other grants now); or an error
// wrapping ErrRevoked when it is no longer accepted: an API key whose entry
// is gone or has another hash, or any API key or anonymous identity when
// those are no longer accepted at all.
//
// A JWT identity stands as long as JWTs are accepted: the token is not
// kept, so a JWT signed by a key that Update removed is good until it
// expires (WithMaxLifetime bounds how long that is).
func (a *Authenticator) Recheck(id *Identity) (*Identity, error) {
	st := a.state.Load()
	if id.gen == st.gen {
		return id, nil // checked against this very set
	}
	switch id.Method {
	case MethodAPIKey:
		return st.recheckAPIKey(id)
	case MethodJWT:
		if st.jwt == nil {
			return nil, fmt.Errorf("%w: JWTs are no longer accepted by this server", ErrRevoked)
		}
	case MethodAnonymous:
		if st.anon == nil {
			return nil, fmt.Errorf("%w: anonymous access is no longer allowed on this server", ErrRevoked)
		}
		if !st.anon.equal(id.Grants) {
			return &Identity{Subject: AnonymousSubject, Method: MethodAnonymous, Grants: *st.anon, gen: st.gen}, nil
		}
	}
	return id, nil
}

func (st *authState) recheckAPIKey(id *Identity) (*Identity, error) {
	if st.keys == nil {
		return nil, fmt.Errorf("%w: API keys are no longer accepted by this server", ErrRevoked)
	}
	k := st.keys.keys[id.KeyID]
	if k == nil || id.key == nil || k.hash != id.key.hash {
		return nil, fmt.Errorf("%w: API key %s is no longer accepted by this server", ErrRevoked, quote(id.KeyID))
	}
	if k.subject != id.key.subject || !k.grants.equal(id.key.grants) {
		return k.identity(st.gen), nil
	}
	return id, nil
}

// Authenticate checks an "authorization" metadata value, "Bearer <token>"
// (the scheme is case-insensitive), and returns the caller's identity. An
// empty value means no credentials: the anonymous identity if WithAnonymous
// is on, else an error wrapping ErrMissingCredentials. Other errors wrap the
// sentinel errors of this package and are fit to show the client.
func (a *Authenticator) Authenticate(authorization string) (*Identity, error) {
	if authorization == "" {
		return a.state.Load().anonymous()
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
	st := a.state.Load()
	var id *Identity
	var err error
	switch {
	case token == "":
		return nil, fmt.Errorf("%w: the bearer token is empty", ErrMalformedCredentials)
	case len(token) > MaxTokenLen:
		return nil, fmt.Errorf("%w: the bearer token is longer than %d bytes", ErrMalformedCredentials, MaxTokenLen)
	case strings.HasPrefix(token, APIKeyPrefix):
		if st.keys == nil {
			return nil, fmt.Errorf("%w: API keys are not accepted by this server", ErrInvalidAPIKey)
		}
		id, err = st.keys.Verify(token)
	case st.jwt == nil:
		return nil, fmt.Errorf("%w: the bearer token is not an API key (%s...), and JWTs are not accepted by this server", ErrMalformedCredentials, APIKeyPrefix)
	default:
		id, err = st.jwt.Verify(token)
	}
	if err != nil {
		return nil, err
	}
	id.gen = st.gen
	return id, nil
}

func (st *authState) anonymous() (*Identity, error) {
	if st.anon == nil {
		return nil, fmt.Errorf(`%w: send "authorization: Bearer <token>" metadata`, ErrMissingCredentials)
	}
	return &Identity{Subject: AnonymousSubject, Method: MethodAnonymous, Grants: *st.anon, gen: st.gen}, nil
}

// equal reports whether g and h grant the same, pattern for pattern.
func (g Grants) equal(h Grants) bool {
	eq := func(a, b Pattern) bool { return a.String() == b.String() }
	return g.Admin == h.Admin && slices.EqualFunc(g.Publish, h.Publish, eq) &&
		slices.EqualFunc(g.Subscribe, h.Subscribe, eq) && slices.EqualFunc(g.Presence, h.Presence, eq)
}
