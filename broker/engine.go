package broker

import (
	"context"
	"errors"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Engine is the contract of an external engine: a store such as Redis where
// rooms are sequenced and kept so that they outlive the process and are
// shared by every node of a cluster. It is the seam the hub is built around;
// the hub is node-local and never waits on the network under a lock.
//
// Without an engine (the default, and the only mode so far) the hub is its
// own sequencer: a room's ring is its history and its subscribers' shared
// backlog, and Publish sequences and encodes under the room's lock (see
// [Hub.Publish]). With an engine, a room's order is decided by the engine,
// and the hub's ring becomes a cache of the tail of that order for the
// node's own subscribers, filled through [Sink.Deliver].
//
// The division of work, so that each message is encoded once in a whole
// cluster: the publishing node encodes the Message once without its offset;
// the engine stores and spreads those bytes with the offset it assigned; a
// receiving node appends the offset field to them (wire.MessageEntryAt), and
// every local subscriber shares the result.
//
// Implementations are safe for concurrent use. Every method but Untrack and
// Close may wait on the network, so the hub calls them off the connection
// writers' goroutines (a join's reply then comes in a later turn).
type Engine interface {
	// Publish sequences body, a Message encoded without its offset, into
	// room and stores it, and returns the offset it was given and the
	// room's epoch once it is stored: nothing is acknowledged that was not.
	// The entry reaches every node that tracks the room, this one
	// included, through its Sink.
	Publish(ctx context.Context, room string, body []byte, exclude string) (offset uint64, epoch string, err error)

	// Track makes the engine deliver room's entries to the node's Sink from
	// now on, and returns the room's position once that is so: every later
	// entry is delivered, or a gap in offsets shows that one was not. With
	// after set and of the room's epoch, it also returns the retained
	// entries after it (at most limit), so a join can resume from the past.
	Track(ctx context.Context, room string, after *Position, limit int) (head Position, backfill []Entry, err error)

	// Untrack ends Track: the node has no subscriber of room left. The hub
	// calls it under its room locks, so it must not block, nor wait for any
	// lock the engine holds while it calls Sink.Deliver.
	Untrack(room string)

	// Read returns the retained entries of room after after: the oldest
	// limit of them, or with newestFirst the newest, newest first; and the
	// room's position. A room whose history was lost has a new epoch.
	Read(ctx context.Context, room string, after uint64, limit int, newestFirst bool) (head Position, entries []Entry, err error)

	// AddMember lists session in room's presence with info, announcing the
	// join to every node; RemoveMember undoes it. Members lists up to limit
	// of a room's members, oldest joins first, and how many there are.
	AddMember(ctx context.Context, room, session string, info map[string]string) error
	RemoveMember(ctx context.Context, room, session string) error
	Members(ctx context.Context, room string, limit int) ([]*roomcastv1.Member, int, error)

	// Ping reports whether the engine can serve at all: nil while its store
	// (some part of it) answers, an error wrapping ErrUnavailable while
	// none does. The server's health check is made of it.
	Ping(ctx context.Context) error

	// Close releases the engine's connections. It is idempotent.
	Close() error
}

// ErrUnavailable is wrapped by an engine's errors when its store cannot be
// reached or did not answer in time. A Publish that fails with it may or may
// not have been stored: the outcome is unknown, so it must not be retried
// blindly. The server answers it with UNAVAILABLE.
var ErrUnavailable = errors.New("broker: engine unavailable")

// Sink is what an engine delivers a node's tracked rooms to: the hub.
type Sink interface {
	// Deliver hands over one entry of room in the order the engine saw it.
	// Entries may come again (duplicates are dropped) or with a gap in
	// offsets or a new epoch, when the engine lost some and could not
	// fetch them again: the room's subscribers are then cut off with a
	// *GapError, never silently skipped past the loss. It must not block.
	Deliver(room string, e Entry)

	// Reset tells that room's sequence broke with no entry to show it: the
	// engine lost entries after the last it delivered and there is none to
	// deliver after them (its store restarted and the room has a new epoch,
	// or the missing entries expired), so head, the room's position in the
	// store now, is where delivery goes on from. The room's subscribers are
	// cut off as for a gap, unless the room is already at head. It must not
	// block.
	Reset(room string, head Position)

	// DeliverEvent hands over one presence event of room, in the order of
	// the room's event sequence. A break in that sequence cuts the room's
	// event listeners off with a *GapError (they resync with Presence). It
	// must not block.
	DeliverEvent(room string, ev Event)
}

// Event is a presence event as an engine spreads it.
type Event struct {
	Seq    uint64 // the room's event sequence: 1 starts it (again), each next one is one more
	Offset uint64 // the room's newest message offset when it happened
	Leave  bool   // a leave; a join otherwise
	Member []byte // the roomcast.v1.Member, encoded; not modified afterwards
}

// Entry is one message of a room as an engine stores and spreads it.
type Entry struct {
	Offset  uint64 // given by the engine's sequencer
	Epoch   string // the room's incarnation the offset belongs to
	Time    int64  // publish time, Unix nanoseconds: history's age
	Exclude string // session that must not receive it, or ""
	Body    []byte // the Message encoded without its offset; not modified afterwards
}

var _ Sink = (*Hub)(nil)
