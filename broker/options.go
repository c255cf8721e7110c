package broker

import (
	"fmt"
	"time"
)

// Defaults for the options of New.
const (
	DefaultBacklogMessages  = 1024
	DefaultBacklogBytes     = 4 << 20
	DefaultHistoryMessages  = 1024
	DefaultHistoryTTL       = 5 * time.Minute
	DefaultPresenceMembers  = 10_000
	DefaultMaxRooms         = 100_000
	DefaultMaxRetainedBytes = 1 << 30
)

// Option configures a Hub.
type Option func(*config)

type config struct {
	backlogMessages int
	backlogBytes    int
	historyMessages int
	historyTTL      time.Duration
	presenceMembers int
	encodeEach      bool
	maxRooms        int
	engine          EngineFunc
	maxRetained     int64
	roomQuota       int
	bytesQuota      int64
	keyWindow       time.Duration
	keysPerRoom     int
}

// WithBacklog bounds how far a subscriber may fall behind in one room, in
// messages and in bytes of encoded messages, before Collect reports it as a
// *LagError. A room keeps that many of its newest messages while it has
// subscribers, shared by all of them, so a subscriber's backlog costs no
// memory of its own. The byte bound also caps each room's history. The
// default is DefaultBacklogMessages (1024) and DefaultBacklogBytes (4 MiB).
func WithBacklog(messages, bytes int) Option {
	return func(c *config) {
		c.backlogMessages = messages
		c.backlogBytes = bytes
	}
}

// WithHistory sets how many of its newest messages a room keeps, and for how
// long, for History and for joins that resume from a position. A room with
// no subscriber is freed once its history has expired. Zero messages turns
// history off: a room is then freed with its last subscriber. A resume
// replays at most the smaller of the history and the backlog. The default is
// DefaultHistoryMessages (1024) for DefaultHistoryTTL (5 minutes).
func WithHistory(messages int, ttl time.Duration) Option {
	return func(c *config) {
		c.historyMessages = messages
		c.historyTTL = ttl
	}
}

// WithPresenceLimit bounds how many members a room's presence lists; a join
// with presence past it fails with ErrPresenceFull. The default is
// DefaultPresenceMembers (10,000).
func WithPresenceLimit(members int) Option {
	return func(c *config) { c.presenceMembers = members }
}

// WithMaxRooms bounds the rooms held in memory at once; a publish or join
// that would make one more fails with ErrTooManyRooms. With the backlog's
// byte bound it bounds the memory that messages can take: at most max rooms
// times the backlog bytes. The default is DefaultMaxRooms (100,000).
func WithMaxRooms(n int) Option { return func(c *config) { c.maxRooms = n } }

// WithEncodePerSubscriber makes every subscriber encode each message for
// itself, as a per-subscriber send loop does: the pattern roomcast exists to
// replace, kept only so benchmarks can measure the difference in one run.
// The default is false: each message is encoded once.
func WithEncodePerSubscriber(on bool) Option {
	return func(c *config) { c.encodeEach = on }
}

// WithMaxRetainedBytes bounds the bytes of encoded messages and presence
// events that every room together holds: the memory that an attacker could
// otherwise fill with large messages to many rooms. Past it a Publish fails
// with ErrOverBudget; and once nine tenths of it are used, the janitor drops
// the history of idle rooms, least recently published first, down to three
// quarters (a resume into what was dropped is not recovered). The default is
// DefaultMaxRetainedBytes (1 GiB); roomcast serve derives its default from the
// machine's memory.
func WithMaxRetainedBytes(n int64) Option { return func(c *config) { c.maxRetained = n } }

// WithOwnerQuotas bounds what one owner (see WithOwner) may hold: rooms its
// publishes and joins created, and bytes of its messages retained. Past
// them, Publish and joins fail with ErrRoomQuota or ErrBytesQuota. Zero
// means the default: a tenth of WithMaxRooms and a quarter of
// WithMaxRetainedBytes, so that no one tenant can fill either (but at least
// 100 rooms and 64 MiB, or all of a smaller limit).
func WithOwnerQuotas(rooms int, bytes int64) Option {
	return func(c *config) { c.roomQuota, c.bytesQuota = rooms, bytes }
}

// WithEngine makes the hub the node-local side of an engine that sequences
// and stores rooms elsewhere (see Engine): newEngine is called once, by New,
// with the hub as the engine's Sink and the hub's history limits, and the
// hub closes the engine. History
// limits then apply to the engine's history too, and the hub holds a room
// only while it has subscribers. WithEncodePerSubscriber has no effect. The
// default is none: the hub sequences and keeps rooms itself, in memory.
func WithEngine(newEngine EngineFunc) Option { return func(c *config) { c.engine = newEngine } }

func newConfig(opts []Option) (config, error) {
	c := config{
		backlogMessages: DefaultBacklogMessages,
		backlogBytes:    DefaultBacklogBytes,
		historyMessages: DefaultHistoryMessages,
		historyTTL:      DefaultHistoryTTL,
		presenceMembers: DefaultPresenceMembers,
		maxRooms:        DefaultMaxRooms,
		maxRetained:     DefaultMaxRetainedBytes,
		keyWindow:       DefaultIdempotencyWindow,
		keysPerRoom:     DefaultIdempotencyKeys,
	}
	for _, o := range opts {
		o(&c)
	}
	if c.roomQuota == 0 { // small limits are not worth sharing out
		c.roomQuota = max(c.maxRooms/10, min(c.maxRooms, 100))
	}
	if c.bytesQuota == 0 {
		c.bytesQuota = max(c.maxRetained/4, min(c.maxRetained, 64<<20))
	}
	switch {
	case c.backlogMessages < 1 || c.backlogBytes < 1:
		return c, fmt.Errorf("broker: backlog must allow at least 1 message and 1 byte, got %d messages and %d bytes", c.backlogMessages, c.backlogBytes)
	case c.historyMessages < 0 || (c.historyMessages > 0 && c.historyTTL <= 0):
		return c, fmt.Errorf("broker: history must be 0 messages, or some messages for a positive time, got %d for %v", c.historyMessages, c.historyTTL)
	case c.maxRetained < int64(c.backlogBytes):
		return c, fmt.Errorf("broker: the retained byte budget (%d) must hold at least one room's backlog (%d bytes)", c.maxRetained, c.backlogBytes)
	case c.roomQuota < 0 || c.bytesQuota < 0:
		return c, fmt.Errorf("broker: owner quotas must not be negative, got %d rooms and %d bytes", c.roomQuota, c.bytesQuota)
	case c.maxRooms < 1:
		return c, fmt.Errorf("broker: the room limit must be positive, got %d", c.maxRooms)
	case c.keyWindow <= 0 || c.keysPerRoom < 1:
		return c, fmt.Errorf("broker: idempotency keys must be remembered for a positive time and at least 1 per room, got %v and %d", c.keyWindow, c.keysPerRoom)
	case c.presenceMembers < 0:
		return c, fmt.Errorf("broker: presence limit must not be negative, got %d", c.presenceMembers)
	}
	return c, nil
}
