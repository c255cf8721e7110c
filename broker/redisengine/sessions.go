package redisengine

import (
	"context"
	"sync"

	"github.com/redis/rueidis"

	"github.com/roomcast/roomcast/broker"
)

// Sessions, so that a publish through any node may name its caller's own
// Subscribe session wherever that is open: one string key per live session,
// <prefix>:s:<id> → owner, on the shard its id hashes to, with a TTL of
// Config.PresenceTTL. The node that holds the session sets it when the
// session opens, sets it again every heartbeat (PresenceTTL/3), and deletes
// it when the session ends; a node that dies stops refreshing, so its
// sessions are gone within PresenceTTL. Memory: one key per open session
// of the cluster, about the id's and the owner's bytes and Redis's per-key
// overhead.

// sessions is what an engine keeps of the sessions it registered.
type sessions struct {
	mu   sync.Mutex
	live map[string]string // id → owner

	// Held by the heartbeat from its snapshot of live until its refresh
	// is answered, and by an ending session between leaving live and its
	// DEL: so a refresh never lands after the DEL and brings the key back.
	refresh sync.Mutex
}

func (e *Engine) sessionKey(id string) string { return e.cfg.Prefix + ":s:" + id }

// RegisterSession implements broker.SessionDirectory: session, owned by
// owner, is findable through every node until EndSession, or within
// Config.PresenceTTL of this engine's end. It waits for Redis once; should
// that fail, the session is still kept and registered again by the next
// heartbeat. Safe for concurrent use.
func (e *Engine) RegisterSession(ctx context.Context, session, owner string) error {
	if e.isClosed() {
		return broker.ErrClosed
	}
	e.sessions.mu.Lock()
	if e.sessions.live == nil {
		e.sessions.live = make(map[string]string)
	}
	e.sessions.live[session] = owner
	e.sessions.mu.Unlock()
	s := e.shardOf(session)
	bctx, cancel := e.bound(ctx)
	defer cancel()
	c := s.client
	if err := c.Do(bctx, c.B().Set().Key(e.sessionKey(session)).Value(owner).PxMilliseconds(e.cfg.PresenceTTL.Milliseconds()).Build()).Error(); err != nil {
		return e.unavailable(ctx, s, err)
	}
	return nil
}

// EndSession implements broker.SessionDirectory: session is no longer
// findable, once its DEL, sent on a goroutine of the engine's, is done. It
// does not block. Safe for concurrent use.
func (e *Engine) EndSession(session string) {
	e.sessions.mu.Lock()
	_, ok := e.sessions.live[session]
	delete(e.sessions.live, session)
	e.sessions.mu.Unlock()
	if !ok {
		return
	}
	e.spawn(func() {
		e.sessions.refresh.Lock()
		e.sessions.refresh.Unlock() // a refresh that saw the session is answered
		s := e.shardOf(session)
		ctx, cancel := e.bound(context.Background())
		defer cancel()
		s.client.Do(ctx, s.client.B().Del().Key(e.sessionKey(session)).Build()) // a failure leaves it to the TTL
	})
}

// SessionOwner implements broker.SessionDirectory: the owner of session
// if some node holds it open. Safe for concurrent use.
func (e *Engine) SessionOwner(ctx context.Context, session string) (string, bool, error) {
	if e.isClosed() {
		return "", false, broker.ErrClosed
	}
	s := e.shardOf(session)
	bctx, cancel := e.bound(ctx)
	defer cancel()
	owner, err := s.client.Do(bctx, s.client.B().Get().Key(e.sessionKey(session)).Build()).ToString()
	switch {
	case rueidis.IsRedisNil(err):
		return "", false, nil
	case err != nil:
		return "", false, e.unavailable(ctx, s, err)
	}
	return owner, true, nil
}

// refreshSessions sets every live session's key again, with a new TTL: a
// heartbeat's work. A key lost meanwhile (Redis restarted) comes back.
func (e *Engine) refreshSessions() {
	e.sessions.refresh.Lock()
	defer e.sessions.refresh.Unlock()
	e.sessions.mu.Lock()
	perShard := make(map[*shard]rueidis.Commands)
	ttl := e.cfg.PresenceTTL.Milliseconds()
	for id, owner := range e.sessions.live {
		s := e.shardOf(id)
		perShard[s] = append(perShard[s], s.client.B().Set().Key(e.sessionKey(id)).Value(owner).PxMilliseconds(ttl).Build())
	}
	e.sessions.mu.Unlock()
	for s, cmds := range perShard {
		ctx, cancel := e.bound(context.Background())
		s.client.DoMulti(ctx, cmds...) // a failure is retried at the next tick
		cancel()
	}
}
