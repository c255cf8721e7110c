package client

import "time"

// Position is a place in a room's sequence of messages: the offset of a
// message and the room's epoch when it was delivered. Offsets of one epoch
// mean nothing in another; the epoch changes when the room's history may
// have been lost, such as when the server restarts.
type Position struct {
	Offset uint64
	Epoch  string
}

// JoinResult is the outcome of a join.
type JoinResult struct {
	// Room is the room joined.
	Room string
	// Offset is the room's newest offset at the join (0 if it has no
	// message): messages after it are delivered.
	Offset uint64
	// Epoch is the room's epoch.
	Epoch string
	// Recovered is true for a join with ResumeAfter when every message
	// after that position is delivered; false when they are not (a gap),
	// and for a join without a position.
	Recovered bool
}

// Event is one thing a Subscription delivers, in order: exactly one of its
// fields is set. Events, and the messages in them, belong to the caller.
//
// Within a room, events come in the room's order: its messages by offset,
// and a Gap between the last message before the gap and the first after.
// Rooms are not ordered with respect to each other.
type Event struct {
	// Message is a message of a room the subscription is in.
	Message *Message
	// Gap says that messages of a room were lost: the subscription could
	// not resume where it was (see Gap).
	Gap *Gap
	// Disconnected says the subscription lost its stream and is
	// reconnecting. It comes after every message received on that stream.
	Disconnected *Disconnected
	// Reconnected says the subscription has a new stream and has joined
	// every room again. It comes before any message received on the new
	// stream, and before the Gap events of its rooms.
	Reconnected *Reconnected
	// Revoked says the server took the subscription out of rooms that its
	// refreshed credential no longer allows. It comes after every message
	// of those rooms.
	Revoked *Revoked
}

// Revoked reports rooms the subscription is no longer in because the
// credential it refreshed the stream with (see WithTokenSource) does not
// allow them: the room is outside its subscribe grants, or was joined with
// presence and is outside its presence grants. The rooms have left the
// subscription (Rooms no longer lists them), so it does not join them again
// when it reconnects; Join them again once a credential allows them.
type Revoked struct {
	// Rooms are the rooms left, in the order the server gave them.
	Rooms []string
}

// Gap reports messages of a room that the subscription cannot deliver. The
// messages after LastDelivered are lost up to and including Resumed's
// offset, which is in another epoch when the server restarted; delivery
// goes on with the message after Resumed. Resynchronize the room from your
// source of truth (History returns what the room still retains).
//
// A Gap follows a reconnect whose join of the room replied recovered=false:
// the server restarted, or no longer retains the messages (too many, too
// old), or freed the room while the subscription was away (when nobody else
// was in it and it retained nothing) and made it again in a new epoch. It
// also follows a join with ResumeAfter whose result nobody waited for (Join
// returned early because its context ended); Join reports its own result in
// JoinResult.Recovered instead.
type Gap struct {
	// Room is the room.
	Room string
	// LastDelivered is the position of the last message of the room the
	// subscription delivered before the gap, or the position it joined at
	// if it delivered none. Its Epoch is empty only for a ResumeAfter
	// position given without one.
	LastDelivered Position
	// Resumed is the room's position when the subscription joined it
	// again: the next message delivered is the one after it.
	Resumed Position
}

// Disconnected reports a lost stream.
type Disconnected struct {
	// Err is why the stream ended, with its gRPC status: codes.Unavailable
	// when the server shuts down or the connection breaks,
	// codes.ResourceExhausted when the server cut off a subscriber that fell
	// too far behind, and so on.
	Err error
}

// Reconnected reports a new stream that replaced a lost one.
type Reconnected struct {
	// Session is the new stream's session id (see Subscription.SessionID).
	Session string
	// Cause is why the last stream that worked ended (what Disconnected
	// reported).
	Cause error
	// Attempts is how many streams the subscription opened to get this
	// one, 1 when the first one worked.
	Attempts int
	// Downtime is how long the subscription had no working stream.
	Downtime time.Duration
	// Rooms is the outcome of rejoining each room, in the order the rooms
	// were joined.
	Rooms []Rejoin
}

// Rejoin is the outcome of joining a room again on a new stream.
type Rejoin struct {
	// Room is the room.
	Room string
	// Recovered is true when the server replays every message after From,
	// false when they are lost (a Gap event follows).
	Recovered bool
	// From is the position the subscription asked to resume after: that of
	// the last message it received in the room.
	From Position
	// Resumed is where delivery goes on, after this position: From when
	// Recovered, else the room's newest position at the join.
	Resumed Position
}
