package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// DefaultPublicServices returns the services that Interceptors let through
// without credentials unless WithPublic says otherwise: gRPC health checking
// and server reflection (both versions).
func DefaultPublicServices() []string {
	return []string{
		"grpc.health.v1.Health",
		"grpc.reflection.v1.ServerReflection",
		"grpc.reflection.v1alpha.ServerReflection",
	}
}

// Interceptors authenticate gRPC calls with an Authenticator. They are
// go-grpc-middleware's auth interceptors, behind its selector so that public
// services skip them. An authenticated call's context carries its Identity
// (see FromContext); a call whose credentials are missing or fail ends with
// UNAUTHENTICATED and a message saying why, before the handler runs. Calls to
// public services are not authenticated and carry no Identity.
// Interceptors is safe for concurrent use.
type Interceptors struct {
	authn    *Authenticator
	services map[string]bool     // public services
	methods  map[methodName]bool // public methods
}

// methodName is a method as go-grpc-middleware's CallMeta has it: a key
// that needs no concatenation, which every call would pay for.
type methodName struct{ service, method string }

// InterceptorOption configures NewInterceptors.
type InterceptorOption func(*interceptorConfig)

type interceptorConfig struct {
	public    []string
	publicSet bool
}

// WithPublic sets the services ("pkg.Service") and methods
// ("/pkg.Service/Method") that need no credentials, replacing the default,
// DefaultPublicServices(). WithPublic() with no names makes every call need
// credentials.
func WithPublic(names ...string) InterceptorOption {
	return func(c *interceptorConfig) {
		c.public = append(c.public, names...)
		c.publicSet = true
	}
}

// NewInterceptors returns interceptors that authenticate with a.
func NewInterceptors(a *Authenticator, opts ...InterceptorOption) (*Interceptors, error) {
	if a == nil {
		return nil, errors.New("auth: NewInterceptors needs an Authenticator")
	}
	var c interceptorConfig
	for _, o := range opts {
		o(&c)
	}
	if !c.publicSet {
		c.public = DefaultPublicServices()
	}
	i := &Interceptors{authn: a, services: make(map[string]bool), methods: make(map[methodName]bool)}
	for _, name := range c.public {
		if !validPublicName(name) {
			return nil, fmt.Errorf(`auth: public name %s is neither a service ("pkg.Service") nor a method ("/pkg.Service/Method")`, quote(name))
		}
		if svc, m, ok := strings.Cut(strings.TrimPrefix(name, "/"), "/"); ok {
			i.methods[methodName{svc, m}] = true
		} else {
			i.services[name] = true
		}
	}
	return i, nil
}

func validPublicName(name string) bool {
	if name == "" || strings.ContainsAny(name, " \t\r\n") {
		return false
	}
	rest, method := strings.CutPrefix(name, "/")
	if !method {
		return !strings.Contains(name, "/")
	}
	svc, m, ok := strings.Cut(rest, "/")
	return ok && svc != "" && m != "" && !strings.Contains(m, "/")
}

// UnaryServerInterceptor returns the interceptor for unary calls, for
// grpc.ChainUnaryInterceptor.
func (i *Interceptors) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return selector.UnaryServerInterceptor(grpcauth.UnaryServerInterceptor(i.AuthFunc()), selector.MatchFunc(i.needsAuth))
}

// StreamServerInterceptor returns the interceptor for streaming calls, for
// grpc.ChainStreamInterceptor.
func (i *Interceptors) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return selector.StreamServerInterceptor(grpcauth.StreamServerInterceptor(i.AuthFunc()), selector.MatchFunc(i.needsAuth))
}

// IsPublic reports whether calls to fullMethod ("/pkg.Service/Method") need
// no credentials.
func (i *Interceptors) IsPublic(fullMethod string) bool {
	svc, m, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	return i.services[svc] || i.methods[methodName{svc, m}]
}

func (i *Interceptors) needsAuth(_ context.Context, c interceptors.CallMeta) bool {
	return !i.services[c.Service] && !i.methods[methodName{c.Service, c.Method}]
}

// AuthFunc returns the go-grpc-middleware AuthFunc the interceptors use: it
// reads the bearer token with auth.AuthFromMD, authenticates it and returns
// a context carrying the Identity, or an UNAUTHENTICATED status. It applies
// to every call; only the interceptors skip public services. A context that
// already carries an Identity (the server authenticated the call from its
// headers, before reading it) is returned as it is.
func (i *Interceptors) AuthFunc() grpcauth.AuthFunc {
	return func(ctx context.Context) (context.Context, error) {
		if _, ok := FromContext(ctx); ok {
			return ctx, nil
		}
		id, err := i.authenticate(ctx)
		if err != nil {
			return nil, status.Error(codes.Unauthenticated, strings.ToValidUTF8(err.Error(), "?"))
		}
		return NewContext(ctx, id), nil
	}
}

func (i *Interceptors) authenticate(ctx context.Context) (*Identity, error) {
	vals := metadata.ValueFromIncomingContext(ctx, "authorization")
	switch len(vals) {
	case 0:
		return i.authn.Authenticate("")
	case 1:
	default:
		return nil, fmt.Errorf("%w: the call has %d authorization values; send one", ErrMalformedCredentials, len(vals))
	}
	if vals[0] == "" { // present but empty: not a bearer value, not no credentials
		return nil, errNotBearer
	}
	// The value in hand, rather than grpcauth.AuthFromMD, which would look
	// it up and copy it again: a call's authentication is on every call's
	// path.
	return i.authn.Authenticate(vals[0])
}

// Authorize checks that the identity in ctx has perm in room. It returns nil
// if so, PERMISSION_DENIED naming the subject, permission and room if not,
// and UNAUTHENTICATED if ctx carries no identity (the interceptors are not
// installed, or the method is public). Handlers call it before acting, e.g.
// auth.Authorize(ctx, auth.Publish, req.GetRoom()).
func Authorize(ctx context.Context, perm Permission, room string) error {
	id, ok := FromContext(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "the call carries no authenticated identity")
	}
	if !id.Allows(perm, room) {
		return status.Errorf(codes.PermissionDenied, "%s has no %s permission for room %s", quote(id.Subject), perm, quote(room))
	}
	return nil
}
