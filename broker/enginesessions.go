package broker

import "context"

// SessionDirectory is an Engine that knows every node's open sessions and
// who owns them, so that a publish through one node may name its caller's
// session open on another (as its publisher session, or the session to
// exclude). The hub's session methods use it when the engine has it.
//
// Implementations are safe for concurrent use.
type SessionDirectory interface {
	// RegisterSession makes session, owned by owner, findable through
	// every node until EndSession, or until a time the engine states
	// after this node stops (it died).
	RegisterSession(ctx context.Context, session, owner string) error

	// EndSession makes session unfindable. It does not block.
	EndSession(session string)

	// SessionOwner returns the owner of session, if any node holds it.
	SessionOwner(ctx context.Context, session string) (owner string, found bool, err error)
}

// RegisterSession makes session, a Subscribe session of this node's owned
// by owner, findable through the other nodes of a cluster (see
// SessionDirectory). It is a no-op without an engine that keeps sessions.
// Safe for concurrent use.
func (b *Hub) RegisterSession(ctx context.Context, session, owner string) error {
	if d, ok := b.engine.(SessionDirectory); ok {
		return d.RegisterSession(ctx, session, owner)
	}
	return nil
}

// EndSession undoes RegisterSession. It does not block, and is a no-op
// without an engine that keeps sessions. Safe for concurrent use.
func (b *Hub) EndSession(session string) {
	if d, ok := b.engine.(SessionDirectory); ok {
		d.EndSession(session)
	}
}

// SessionOwner returns the owner of a session some other node of the
// cluster registered; found is false without an engine that keeps
// sessions. Safe for concurrent use.
func (b *Hub) SessionOwner(ctx context.Context, session string) (owner string, found bool, err error) {
	if d, ok := b.engine.(SessionDirectory); ok {
		return d.SessionOwner(ctx, session)
	}
	return "", false, nil
}
