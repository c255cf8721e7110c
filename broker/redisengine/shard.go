package redisengine

import (
	"hash/fnv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/rueidis"
)

// shard is one Redis server and what the engine keeps for it: a command
// client (auto-pipelined), the scripts bound to the server's process, the
// rooms tracked on it and the PUB/SUB session they are subscribed on.
//
// Only the session's goroutine sends SUBSCRIBE and UNSUBSCRIBE, so their
// order on the wire is the order they were decided in, and the SUBSCRIBEs
// of many Tracks at once go out in batches.
//
// Locks: a track's mu is never taken while mu is held, nor mu while a
// track's mu is: the Sink is called under a track's mu, and Untrack, which
// the hub may call under its own locks, takes mu only.
type shard struct {
	e      *Engine
	addr   string
	client rueidis.Client

	bootMu  sync.Mutex                // one bootstrap at a time
	scripts atomic.Pointer[scriptSet] // nil until the first bootstrap

	mu     sync.RWMutex
	rooms  map[string]*track // tracked (or lingering) rooms
	sess   *session          // the live PUB/SUB session, nil while there is none
	up     chan struct{}     // closed when a session goes live; replaced when it ends
	gen    uint64            // sessions so far
	subs   []subscription    // Tracks waiting for their rooms' SUBSCRIBE on sess
	unsubs []string          // rooms untracked, to UNSUBSCRIBE
	kick   chan struct{}     // wakes the session's goroutine to send subs and unsubs
}

// subscription is a Track's request to subscribe its room on the session.
type subscription struct {
	t    *track
	done chan error // gets one value: nil once Redis confirmed
}

func newShard(e *Engine, addr string, client rueidis.Client) *shard {
	return &shard{e: e, addr: addr, client: client, rooms: make(map[string]*track),
		up: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// shardOf is the shard of room: jump consistent hash (Lamping and Veach) of
// the FNV-64a hash of its name over the shards, so appending a shard moves
// about 1/n of the rooms and the others stay.
func (e *Engine) shardOf(room string) *shard {
	if len(e.shards) == 1 {
		return e.shards[0]
	}
	h := fnv.New64a()
	h.Write([]byte(room))
	return e.shards[jump(h.Sum64(), len(e.shards))]
}

func jump(key uint64, buckets int) int {
	var b, j int64 = -1, 0
	for j < int64(buckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// Keys and channel of a room. The room's name is a hash tag, so that all of
// them share one Cluster slot should the engine ever run on one.
func (e *Engine) metaKey(room string) string    { return e.cfg.Prefix + ":{" + room + "}:m" }
func (e *Engine) streamKey(room string) string  { return e.cfg.Prefix + ":{" + room + "}:h" }
func (e *Engine) membersKey(room string) string { return e.cfg.Prefix + ":{" + room + "}:p" }
func (e *Engine) joinsKey(room string) string   { return e.cfg.Prefix + ":{" + room + "}:j" }
func (e *Engine) expiryKey(room string) string  { return e.cfg.Prefix + ":{" + room + "}:x" }
func (e *Engine) channel(room string) string    { return e.cfg.Prefix + ":{" + room + "}" }

// roomOf is the room of a channel, and whether it is one of this engine's.
func (e *Engine) roomOf(channel string) (string, bool) {
	rest, ok := strings.CutPrefix(channel, e.cfg.Prefix+":{")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "}")
}
