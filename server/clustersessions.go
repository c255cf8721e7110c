package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// sessionDirectory finds the Subscribe sessions open on a cluster's other
// nodes: the hub, which asks its engine (broker.SessionDirectory), or
// finds none without one. Safe for concurrent use.
type sessionDirectory interface {
	RegisterSession(ctx context.Context, session, owner string) error
	EndSession(session string)
	SessionOwner(ctx context.Context, session string) (owner string, found bool, err error)
}

// register makes ls findable by the other nodes before its client is told
// its id (the greeting comes in the stream's first turn), so a publish
// through another node never races it. Should the store not answer, the
// session goes on: the engine registers it again on its next heartbeat,
// and until then only this node accepts its id.
func (a *access) register(ctx context.Context, ls *liveSession) {
	if a.dir != nil {
		a.dir.RegisterSession(ctx, ls.id, ls.owner)
	}
}

// remoteOwner is the owner of a session open on another node, or "" for
// none; its error is a gRPC status.
func (a *access) remoteOwner(ctx context.Context, session string) (string, error) {
	if a.dir == nil {
		return "", nil
	}
	owner, found, err := a.dir.SessionOwner(ctx, session)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "", status.FromContextError(err).Err()
	case err != nil:
		return "", status.Error(codes.Unavailable, "the broker's store is unreachable, so sessions on other nodes cannot be checked; retry")
	case !found:
		return "", nil
	}
	return owner, nil
}
