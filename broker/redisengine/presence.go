package redisengine

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Presence, per room: a hash session → encoded Member (p), a sorted set of
// sessions by join time in microseconds (j: the listing order, ties by
// session id as the hub's), a sorted set of sessions by expiry in
// milliseconds (x), and the sequence of the room's presence events (q).
// A member expires PresenceTTL after it was added unless the node that
// added it is alive: each engine refreshes its own members' expiry every
// PresenceTTL/3. Expired members are reaped, each with a leave event, by
// the next join or listing of the room.
//
// Every join and leave is published on the room's channel as a frame
//
//	p:<seq>:<offset>:<J|L>:<encoded Member>
//
// with the room's newest message offset at that moment, so that a node can
// place the event among the messages. (The Sink has no method for them
// yet: nodes receive and count them.)
//
// These scripts decide no epoch, so they are ordinary scripts (EVALSHA with
// an EVAL fallback).

// presenceLib is the part every presence script shares: the event and the
// reaper. KEYS: p, j, x, q, meta. ARGV[1] is the TTL (ms), ARGV[2] the
// channel, ARGV[3] now (ms).
const presenceLib = `local p, j, x, q = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local function event(kind, member)
  local seq = redis.call('INCR', q)
  redis.call('PEXPIRE', q, ARGV[1])
  local off = redis.call('HGET', KEYS[5], 's') or '0'
  redis.call('PUBLISH', ARGV[2], 'p:' .. seq .. ':' .. off .. ':' .. kind .. ':' .. member)
end
local function reap(n)
  local dead = redis.call('ZRANGEBYSCORE', x, '-inf', ARGV[3], 'LIMIT', 0, n)
  for _, s in ipairs(dead) do
    local m = redis.call('HGET', p, s)
    redis.call('HDEL', p, s)
    redis.call('ZREM', j, s)
    redis.call('ZREM', x, s)
    if m then event('L', m) end
  end
end
`

// joinScript adds a member. ARGV[4] session, [5] encoded Member, [6] join
// score, [7] expiry (ms), [8] the room's limit.
var joinScript = rueidis.NewLuaScript(presenceLib + `reap(100)
if redis.call('HEXISTS', p, ARGV[4]) == 0 and redis.call('ZCARD', j) >= tonumber(ARGV[8]) then
  return redis.error_reply('FULL room presence is full')
end
redis.call('HSET', p, ARGV[4], ARGV[5])
redis.call('ZADD', j, ARGV[6], ARGV[4])
redis.call('ZADD', x, ARGV[7], ARGV[4])
redis.call('PEXPIRE', p, ARGV[1])
redis.call('PEXPIRE', j, ARGV[1])
redis.call('PEXPIRE', x, ARGV[1])
event('J', ARGV[5])
return 1`)

// leaveScript removes a member. ARGV[4] session.
var leaveScript = rueidis.NewLuaScript(presenceLib + `local m = redis.call('HGET', p, ARGV[4])
if not m then
  return 0
end
redis.call('HDEL', p, ARGV[4])
redis.call('ZREM', j, ARGV[4])
redis.call('ZREM', x, ARGV[4])
event('L', m)
return 1`)

// listScript reaps, then returns {total, member...}: the first ARGV[4]
// members in join order.
var listScript = rueidis.NewLuaScript(presenceLib + `reap(1000)
local out = {redis.call('ZCARD', j)}
local n = tonumber(ARGV[4])
if n > 0 then
  for _, s in ipairs(redis.call('ZRANGE', j, 0, n - 1)) do
    local m = redis.call('HGET', p, s)
    if m then out[#out + 1] = m end
  end
end
return out`)

// presenceKeyTTL is how long a room's presence keys outlive the last
// heartbeat or join: longer than a member's own expiry, so that a dead
// node's members are reaped, with their leave events, before their keys
// vanish without a word.
func (e *Engine) presenceKeyTTL() time.Duration { return 3 * e.cfg.PresenceTTL }

// reapScript reaps a room's expired members, each with a leave event.
var reapScript = rueidis.NewLuaScript(presenceLib + `reap(1000)
return 1`)

// reapPerTick bounds the tracked rooms one heartbeat reaps, so that a node
// tracking many rooms spreads the work over ticks: each room is reaped at
// least every ceil(tracked/reapPerTick) ticks.
const reapPerTick = 1000

// members is the sessions an engine added and keeps alive, per room.
type members struct {
	mu    sync.Mutex
	rooms map[string]map[string]struct{}
}

func (e *Engine) presenceKeys(room string) []string {
	return []string{e.membersKey(room), e.joinsKey(room), e.expiryKey(room), e.cfg.Prefix + ":{" + room + "}:q", e.metaKey(room)}
}

func (e *Engine) presenceArgs(room string, now time.Time, more ...string) []string {
	return append([]string{ms(e.presenceKeyTTL()), e.channel(room), strconv.FormatInt(now.UnixMilli(), 10)}, more...)
}

// AddMember implements broker.Engine: session is listed in room's presence
// with info, and a join event published, unless the room lists
// Config.PresenceMembers already (broker.ErrPresenceFull). Adding a listed
// session again replaces it. The engine keeps the member alive until
// RemoveMember or Close. Safe for concurrent use.
func (e *Engine) AddMember(ctx context.Context, room, session string, info map[string]string) error {
	if e.isClosed() {
		return broker.ErrClosed
	}
	s := e.shardOf(room)
	bctx, cancel := e.bound(ctx)
	defer cancel()
	now := time.Now()
	m, err := proto.Marshal(&roomcastv1.Member{SessionId: session, Info: info, JoinTime: timestamppb.New(now)})
	if err != nil {
		return err
	}
	e.members.mu.Lock()
	if e.members.rooms[room] == nil {
		e.members.rooms[room] = make(map[string]struct{})
	}
	e.members.rooms[room][session] = struct{}{} // before the join: a heartbeat meanwhile only refreshes
	e.members.mu.Unlock()
	err = joinScript.Exec(bctx, s.client, e.presenceKeys(room), e.presenceArgs(room, now,
		session, string(m), strconv.FormatInt(now.UnixMicro(), 10),
		strconv.FormatInt(now.Add(e.cfg.PresenceTTL).UnixMilli(), 10), strconv.Itoa(e.cfg.PresenceMembers))).Error()
	if err != nil {
		e.forget(room, session)
		var re *rueidis.RedisError
		if errors.As(err, &re) && strings.HasPrefix(re.Error(), "FULL") {
			return broker.ErrPresenceFull
		}
		return e.unavailable(ctx, s, err)
	}
	return nil
}

// RemoveMember implements broker.Engine: session leaves room's presence,
// with a leave event if it was listed. Safe for concurrent use.
func (e *Engine) RemoveMember(ctx context.Context, room, session string) error {
	if e.isClosed() {
		return broker.ErrClosed
	}
	e.forget(room, session)
	s := e.shardOf(room)
	bctx, cancel := e.bound(ctx)
	defer cancel()
	if err := leaveScript.Exec(bctx, s.client, e.presenceKeys(room), e.presenceArgs(room, time.Now(), session)).Error(); err != nil {
		return e.unavailable(ctx, s, err)
	}
	return nil
}

func (e *Engine) forget(room, session string) {
	e.members.mu.Lock()
	defer e.members.mu.Unlock()
	delete(e.members.rooms[room], session)
	if len(e.members.rooms[room]) == 0 {
		delete(e.members.rooms, room)
	}
}

// Members implements broker.Engine: up to limit of room's members, oldest
// joins first, and how many there are, after reaping the expired. Safe for
// concurrent use.
func (e *Engine) Members(ctx context.Context, room string, limit int) ([]*roomcastv1.Member, int, error) {
	if e.isClosed() {
		return nil, 0, broker.ErrClosed
	}
	s := e.shardOf(room)
	bctx, cancel := e.bound(ctx)
	defer cancel()
	reply, err := listScript.Exec(bctx, s.client, e.presenceKeys(room), e.presenceArgs(room, time.Now(), strconv.Itoa(max(limit, 0)))).ToArray()
	if err != nil {
		return nil, 0, e.unavailable(ctx, s, err)
	}
	if len(reply) == 0 {
		return nil, 0, errors.New("redisengine: presence listing answered nothing")
	}
	total, err := reply[0].AsInt64()
	if err != nil {
		return nil, 0, err
	}
	out := make([]*roomcastv1.Member, 0, len(reply)-1)
	for _, r := range reply[1:] {
		b, err := r.AsBytes()
		if err != nil {
			return nil, 0, err
		}
		m := new(roomcastv1.Member)
		if err := proto.Unmarshal(b, m); err != nil {
			return nil, 0, err
		}
		out = append(out, m)
	}
	return out, int(total), nil
}

// heartbeat refreshes the expiry of the members this engine added, and of
// the sessions it registered (sessions.go), every PresenceTTL/3 until
// Close, on a goroutine of the engine's. ZADD XX never
// brings back a member reaped meanwhile (the engine stalled past the TTL).
func (e *Engine) heartbeat() {
	tick := time.NewTicker(e.cfg.PresenceTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-e.life.Done():
			return
		case <-tick.C:
		}
		e.members.mu.Lock()
		rooms := make(map[string][]string, len(e.members.rooms))
		for room, sessions := range e.members.rooms {
			for s := range sessions {
				rooms[room] = append(rooms[room], s)
			}
		}
		e.members.mu.Unlock()
		expiry := float64(time.Now().Add(e.cfg.PresenceTTL).UnixMilli())
		for room, sessions := range rooms {
			s := e.shardOf(room)
			c := s.client
			z := c.B().Zadd().Key(e.expiryKey(room)).Xx().ScoreMember()
			for _, id := range sessions {
				z = z.ScoreMember(expiry, id)
			}
			cmds := rueidis.Commands{z.Build()}
			for _, k := range e.presenceKeys(room)[:4] {
				cmds = append(cmds, c.B().Pexpire().Key(k).Milliseconds(e.presenceKeyTTL().Milliseconds()).Build())
			}
			ctx, cancel := e.bound(context.Background())
			c.DoMulti(ctx, cmds...) // a failure is retried at the next tick
			cancel()
		}
		e.refreshSessions()
		e.reapTracked()
	}
}

// reapTracked reaps, with leave events, the expired members of up to
// reapPerTick of the rooms this node tracks, taking up where the last tick
// left off: the members of a node that died leave the rooms that anyone
// watches within the presence TTL and a few ticks, with no join or listing
// needed to notice.
func (e *Engine) reapTracked() {
	var rooms []string
	for _, s := range e.shards {
		s.mu.RLock()
		for room := range s.rooms {
			rooms = append(rooms, room)
		}
		s.mu.RUnlock()
	}
	if len(rooms) == 0 {
		return
	}
	slices.Sort(rooms)
	start := e.reapFrom % len(rooms)
	for i := range min(len(rooms), reapPerTick) {
		room := rooms[(start+i)%len(rooms)]
		s := e.shardOf(room)
		ctx, cancel := e.bound(context.Background())
		reapScript.Exec(ctx, s.client, e.presenceKeys(room), e.presenceArgs(room, time.Now())) // a failure is retried at a later tick
		cancel()
	}
	e.reapFrom = start + min(len(rooms), reapPerTick)
}
