package broker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// Quotas keep one tenant from taking what every tenant shares: the room
// limit (WithMaxRooms) and the retained-byte budget (WithMaxRetainedBytes).
// A tenant is whoever the caller names with WithOwner: the server names the
// credential's subject, or the client's address for anonymous callers. Calls
// whose context names no owner have no quota.
//
// An owner is charged for the rooms its publishes and joins created, while
// they live, and for the bytes of its messages that rooms retain, until they
// are evicted.

// Errors of Publish and Join past an owner's quota.
var (
	ErrRoomQuota  = errors.New("broker: the caller's quota of rooms is used up")
	ErrBytesQuota = errors.New("broker: the caller's quota of retained bytes is used up")
)

type ownerKey struct{}

// WithOwner returns ctx naming owner as the tenant that Publish and joins
// made with it are charged to.
func WithOwner(ctx context.Context, owner string) context.Context {
	return &ownerContext{Context: ctx, owner: owner}
}

// ownerContext is a context naming an owner: one allocation, where
// context.WithValue would take a second to box the string. Every publish
// makes one. Its value is itself, a pointer, which needs no boxing either:
// ownerName reads the name from it.
type ownerContext struct {
	context.Context
	owner string
}

func (c *ownerContext) Value(key any) any {
	if key == (ownerKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// owner is one tenant's use. Its counters are changed under the locks of the
// rooms concerned, so they are atomic.
type owner struct {
	rooms atomic.Int64 // live rooms it created
	bytes atomic.Int64 // bytes of its messages retained
}

// owners maps tenants to their use. An owner that uses nothing is dropped by
// the janitor; one still referenced by a room or an entry keeps counting for
// them, so a drop can at most let a tenant start over from zero once.
type owners struct{ m sync.Map } // string → *owner

// of returns ctx's owner, or nil when ctx names none.
func (o *owners) of(ctx context.Context) *owner { return o.named(ownerName(ctx)) }

// named returns the owner named key, or nil for "". It takes no lock: it
// is on every publish.
func (o *owners) named(key string) *owner {
	if key == "" {
		return nil
	}
	if w, ok := o.m.Load(key); ok {
		return w.(*owner)
	}
	w, _ := o.m.LoadOrStore(key, new(owner))
	return w.(*owner)
}

// prune drops the owners that use nothing.
func (o *owners) prune() {
	o.m.Range(func(k, w any) bool {
		if w := w.(*owner); w.rooms.Load() == 0 && w.bytes.Load() == 0 {
			o.m.CompareAndDelete(k, w)
		}
		return true
	})
}
