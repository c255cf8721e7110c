package server

import (
	"context"

	"google.golang.org/grpc/tap"

	"github.com/roomcast/roomcast/auth"
)

// authTap returns the grpc.InTapHandle that authenticates each call from its
// headers, before grpc-go reads its body or starts a handler: a call with a
// missing or bad credential is answered UNAUTHENTICATED without its request
// being read, let alone decoded (a generated handler decodes before any
// interceptor runs). Calls to the public services, health and reflection,
// pass as they do the interceptors. The authenticated call's context
// carries its auth.Identity, which the interceptors then take as it is.
// A refusal is logged to log, as the interceptors' would be.
//
// grpc-go runs it on the connection's reading goroutine, one call after
// another: what it costs is a credential check (a hash for an API key, a
// signature for a JWT), which the interceptors would have spent anyway.
//
// Each authenticated call is reported to authenticated, and each refused
// one to refused, with its context, which tells its connection (see
// connGuard). An authenticated call is then refused if limit, given its
// context, says so: a refusal that needs only the caller's identity costs
// no handler.
func authTap(in *auth.Interceptors, log *failureLog, authenticated, refused func(context.Context), limit func(ctx context.Context, method string) error) tap.ServerInHandle {
	authenticate := in.AuthFunc()
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		if in.IsPublic(info.FullMethodName) {
			return ctx, nil
		}
		ctx2, err := authenticate(ctx) // the call's metadata is already in ctx
		if err != nil {
			log.refused(err, peerAddr(ctx), "rpc", info.FullMethodName)
			refused(ctx)
			return nil, err
		}
		authenticated(ctx2)
		if err := limit(ctx2, info.FullMethodName); err != nil {
			refused(ctx2)
			return nil, err
		}
		return ctx2, nil
	}
}
