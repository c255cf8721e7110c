package broker

import (
	"context"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// KeyedPublisher is an Engine that keeps idempotency keys itself, beside
// each room, so that a retry sequenced by any node finds the first
// publish's key. The hub checks for it when a publish carries a key; an
// engine without it makes such a publish fail with ErrKeysUnsupported.
//
// Implementations are safe for concurrent use.
type KeyedPublisher interface {
	// PublishKeyed is Engine.Publish with an idempotency key, checked and
	// remembered in the same atomic step that sequences body: if key was
	// remembered for room within EngineConfig.KeyWindow and the room's
	// epoch is the same as then, nothing is appended and the first
	// publish's offset and epoch are returned with dup true. A room
	// remembers at most EngineConfig.KeysPerRoom keys, forgetting the
	// oldest first, and forgets them all when it gets a new epoch.
	PublishKeyed(ctx context.Context, room string, body []byte, exclude string, key IdempotencyKey) (offset uint64, epoch string, dup bool, err error)
}

// IdempotencyKey is a publish's key as an engine remembers it: a key
// belongs to its owner (see WithOwner), so two owners' equal keys are two
// keys.
type IdempotencyKey struct {
	Owner, Key string
}

// publishKeyedToEngine is a keyed PublishWith with an engine: the engine
// keeps the key, or the publish fails with ErrKeysUnsupported.
func (b *Hub) publishKeyedToEngine(ctx context.Context, msg *roomcastv1.Message, opts PublishOptions) (uint64, string, error) {
	kp, ok := b.engine.(KeyedPublisher)
	if !ok {
		return 0, "", ErrKeysUnsupported
	}
	body, err := b.encodeForEngine(msg)
	if err != nil {
		return 0, "", err
	}
	off, epoch, dup, err := kp.PublishKeyed(ctx, msg.GetRoom(), body, opts.Exclude, IdempotencyKey{Owner: opts.ownerIn(ctx), Key: opts.IdempotencyKey})
	if err != nil {
		return 0, "", err
	}
	if dup {
		b.stats.deduplicated.Add(1)
	} else {
		b.stats.published.Add(1)
	}
	return off, epoch, nil
}
