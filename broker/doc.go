// Package broker is roomcast's core: the node-local hub that sequences each
// room's messages, encodes every message once, keeps the encoded bytes in a
// per-room ring and lets subscribers copy out, by reference, whatever lies
// past their cursor.
//
// # The path of a message
//
//   - Sequenced: in [Hub.Publish] (publish.go), under the room's lock, which
//     gives the message the room's next offset. With an engine (see
//     [Engine], enginehub.go) the engine sequences it instead, and the entry
//     comes back through [Hub.Deliver] (deliver.go).
//   - Encoded: once, in the same call, by internal/wire, which alone knows
//     the layout that lets one encoded entry sit in every subscriber's
//     frame. An entry sequenced elsewhere is not encoded again: the offset
//     is appended to the bytes the publishing node encoded.
//   - Waits: in the room's ring (ring.go), which is both the subscribers'
//     shared backlog and the room's history, bounded in messages, bytes and
//     age. No subscriber has a queue of its own. Publishing wakes only the
//     subscribers parked on the room ([Subscriber.Park]).
//   - Written: by whoever owns the [Subscriber]: [Subscriber.Collect] copies
//     out, as one frame of shared buffers, everything past the subscriber's
//     cursors. In roomcast that is the server's connection writer, which
//     sends the frame on the subscriber's gRPC stream (see package server).
//
// A publish may carry an idempotency key ([PublishOptions]): a retry with
// the same key, owner and room finds the key beside the room's ring and is
// answered with the first publish's offset, appending nothing
// (idempotency.go).
//
// A subscriber further behind than the backlog bound is reported as lagging
// (*[LagError]), and one whose room lost messages on this node as having a
// gap (*[GapError]): never skipped in silence. Where a join with a position
// resumes is decided in one place, the resume rule (resume.go); presence
// lives in presence.go.
//
// # Lock order
//
// A -> B means a goroutine may hold A and take B, never the reverse.
//
//	shard.mu -> room.mu             lockRoom, release, free, the janitor
//	room.mu -> (a subscriber's notify func, which takes the server's locks)
//	room.mu -> Engine.Untrack       (which must not block)
//
// Subscriber.mu is taken with no other broker lock held. Nothing in the
// package waits on the network while holding a lock: an engine's round
// trips run on the hub's own goroutines (prepareJoin), never under a lock
// and never on the goroutine that serves a subscriber.
package broker
