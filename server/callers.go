package server

import (
	"context"
	"net"
	"sync"

	"google.golang.org/grpc/peer"

	"github.com/roomcast/roomcast/auth"
)

// callerCache keeps the anonymous identity of each client address that
// made calls recently, on a server without an authenticator, so that a
// unary call's caller costs a map lookup rather than an Identity and its
// subject string each time the tap and the handler ask (four allocations,
// some 370 bytes, of every unary Publish). An identity it hands out is
// shared by calls, so nothing may key a map by its pointer, as the
// sessions do (sessions.go): streams make their own (access.identity). It
// is safe for concurrent use.
type callerCache struct {
	mu  sync.RWMutex
	ids map[string]*auth.Identity // by client key (appendClientKey)
	// byConn holds the same identities by their connections' TCP address,
	// which grpc-go hands every call of a connection, the same pointer:
	// a call of a connection seen before costs its pointer's lookup, not
	// its address formatted and its key's.
	byConn map[*net.TCPAddr]*auth.Identity
}

// maxCachedCallers bounds the cache: past it, it starts again empty.
const maxCachedCallers = 4096

// callIdentity is identity(ctx) for a call that only reads the identity
// it is given and compares it by value.
func (a *access) callIdentity(ctx context.Context) *auth.Identity {
	if _, ok := auth.FromContext(ctx); ok { // authenticated, or admitted anonymously with grants
		return a.identity(ctx)
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return a.identity(ctx)
	}
	c := &a.callers
	conn, _ := p.Addr.(*net.TCPAddr)
	if conn != nil {
		c.mu.RLock()
		id := c.byConn[conn]
		c.mu.RUnlock()
		if id != nil {
			return id
		}
	}
	var buf [64]byte
	key := appendClientKey(buf[:0], p.Addr)
	c.mu.RLock()
	id := c.ids[string(key)] // a lookup by bytes, which copies nothing
	c.mu.RUnlock()
	if id != nil && conn == nil {
		return id
	}
	if id == nil {
		id = &auth.Identity{Subject: anonymousPrefix + string(key), Method: auth.MethodAnonymous}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ids) >= maxCachedCallers || c.ids == nil {
		c.ids = make(map[string]*auth.Identity)
	}
	if len(c.byConn) >= maxCachedCallers || c.byConn == nil {
		c.byConn = make(map[*net.TCPAddr]*auth.Identity)
	}
	c.ids[id.Subject[len(anonymousPrefix):]] = id
	if conn != nil {
		c.byConn[conn] = id
	}
	return id
}
