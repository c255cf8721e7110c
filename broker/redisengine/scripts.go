package redisengine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/rueidis"
)

// The scripts that decide a room's epoch are bound to one Redis process:
// __RUN__ is replaced by the process's run_id when they are loaded, and they
// stamp it into a room's hash (field r) when they give the room an epoch. A
// hash stamped by another process (the server restarted, perhaps from a
// snapshot or an AOF that lost the last writes, or a replica took over) is
// not trusted: the room gets a new epoch, so that no (offset, epoch) is ever
// given to two messages.
//
// That holds because a script bound to process R can run only inside R: the
// script cache is process memory (not saved, not replicated), and these
// scripts are only ever sent with EVALSHA, never EVAL, which would load
// them into whichever process answers. On NOSCRIPT the engine bootstraps
// again (see bootstrap), learning the new process's run_id.
//
// Offsets and times are passed and formatted as strings: Lua 5.1 numbers
// print in exponent form past 10^14.

// publishSrc sequences one message. KEYS: meta hash, stream, keys hash,
// keys sorted set. ARGV: body, exclude, time, history size, history TTL
// (ms), meta TTL (ms), an epoch to use if the room needs a new one,
// channel, idempotency key field (empty for none), key window (ms), keys per
// room. It returns {offset, epoch}, or {offset, epoch, 1} for a key
// remembered from an earlier publish, which appended nothing.
//
// The room's keys (see keys.go) are a hash field → "offset:epoch" and a
// sorted set field → time remembered (ms, by Redis's clock, which every
// node shares): a key is honoured while it is within the window and of the
// room's current epoch. Each keyed publish forgets up to 100 expired keys
// and, at the cap, the oldest; both keys expire a window after the last
// keyed publish, and a new epoch deletes them.
const publishSrc = `local RUN = '__RUN__'
local meta, hist, kh, kz = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local kf = ARGV[9]
local m = redis.call('HMGET', meta, 'e', 'r')
local epoch = m[1]
local function renew()
  epoch = ARGV[7]
  redis.call('DEL', hist, kh, kz)
  redis.call('HSET', meta, 'e', epoch, 'r', RUN, 's', 0)
end
local function append()
  local off = string.format('%d', redis.call('HINCRBY', meta, 's', 1))
  local res
  if ARGV[2] == '' then
    res = redis.pcall('XADD', hist, 'MAXLEN', ARGV[4], off, 'd', ARGV[1], 't', ARGV[3])
  else
    res = redis.pcall('XADD', hist, 'MAXLEN', ARGV[4], off, 'd', ARGV[1], 't', ARGV[3], 'x', ARGV[2])
  end
  return off, res
end
if not epoch or m[2] ~= RUN then
  renew()
end
local now
if kf ~= '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local oldest = string.format('%d', now - tonumber(ARGV[10]))
  local gone = redis.call('ZRANGEBYSCORE', kz, '-inf', '(' .. oldest, 'LIMIT', 0, 100)
  if #gone > 0 then
    redis.call('HDEL', kh, unpack(gone))
    redis.call('ZREM', kz, unpack(gone))
  end
  local v = redis.call('HGET', kh, kf)
  local at = redis.call('ZSCORE', kz, kf)
  if v and at and tonumber(at) >= tonumber(oldest) then
    local sep = string.find(v, ':', 1, true)
    if sep and string.sub(v, sep + 1) == epoch then
      return {string.sub(v, 1, sep - 1), epoch, 1}
    end
  end
end
local off, res = append()
if type(res) == 'table' and res.err then
  -- the stream is ahead of the hash (evicted or edited): start again
  renew()
  off, res = append()
  if type(res) == 'table' and res.err then
    return redis.error_reply(res.err)
  end
end
redis.call('PEXPIRE', meta, ARGV[6])
redis.call('PEXPIRE', hist, ARGV[5])
redis.call('PUBLISH', ARGV[8], 'm:' .. off .. ':' .. epoch .. ':' .. ARGV[3] .. ':' .. #ARGV[2] .. ':' .. ARGV[2] .. ARGV[1])
if kf ~= '' then
  local over = redis.call('ZCARD', kz) - tonumber(ARGV[11]) + 1
  if over > 0 then
    local popped = redis.call('ZPOPMIN', kz, over)
    for i = 1, #popped, 2 do
      redis.call('HDEL', kh, popped[i])
    end
  end
  redis.call('HSET', kh, kf, off .. ':' .. epoch)
  redis.call('ZADD', kz, now, kf)
  redis.call('PEXPIRE', kh, ARGV[10])
  redis.call('PEXPIRE', kz, ARGV[10])
end
return {off, epoch}`

// headSrc reads a room's position. KEYS: meta hash, stream. ARGV: an epoch
// to give the room if it has none of this process's (empty to only read), meta
// TTL (ms). It returns {epoch, offset}, or {} when the room has no epoch of
// this process and ARGV[1] is empty.
const headSrc = `local RUN = '__RUN__'
local m = redis.call('HMGET', KEYS[1], 'e', 'r', 's')
if m[1] and m[2] == RUN then
  return {m[1], m[3] or '0'}
end
if ARGV[1] == '' then
  return {}
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'e', ARGV[1], 'r', RUN, 's', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {ARGV[1], '0'}`

// scriptSet is the scripts as loaded into one Redis process.
type scriptSet struct {
	run     string // the process's run_id
	publish string // SHA1 of publishSrc bound to run
	head    string // SHA1 of headSrc bound to run
}

// current returns the shard's scripts, bootstrapping if there are none yet.
func (s *shard) current(ctx context.Context) (*scriptSet, error) {
	if sc := s.scripts.Load(); sc != nil {
		return sc, nil
	}
	return s.bootstrap(ctx, nil)
}

// bootstrap loads the scripts bound to the Redis process that answers, in
// place of stale (the set that just got NOSCRIPT, or nil). Concurrent
// callers with the same stale set share one bootstrap.
//
// It runs on one dedicated connection, which cannot outlive the process it
// talks to: INFO to learn the run_id, then MULTI, INFO, SCRIPT LOAD...,
// EXEC, so that the loads and a second INFO run atomically in one process.
// Should that INFO name another process (a proxy switched servers between
// the two), the scripts loaded are bound to the wrong one: they are flushed
// at once and the bootstrap fails.
func (s *shard) bootstrap(ctx context.Context, stale *scriptSet) (*scriptSet, error) {
	s.bootMu.Lock()
	defer s.bootMu.Unlock()
	if sc := s.scripts.Load(); sc != nil && sc != stale {
		return sc, nil // someone else bootstrapped meanwhile
	}
	var sc *scriptSet
	err := s.client.Dedicated(func(d rueidis.DedicatedClient) error {
		info, err := d.Do(ctx, d.B().Info().Section("server").Build()).ToString()
		if err != nil {
			return err
		}
		run, err := runID(info)
		if err != nil {
			return err
		}
		pub, head := strings.Replace(publishSrc, "__RUN__", run, 1), strings.Replace(headSrc, "__RUN__", run, 1)
		res := d.DoMulti(ctx,
			d.B().Multi().Build(),
			d.B().Info().Section("server").Build(),
			d.B().ScriptLoad().Script(pub).Build(),
			d.B().ScriptLoad().Script(head).Build(),
			d.B().Exec().Build())
		execd, err := res[len(res)-1].ToArray()
		if err != nil {
			return err
		}
		if len(execd) != 3 {
			return fmt.Errorf("EXEC answered %d replies, want 3", len(execd))
		}
		info2, err := execd[0].ToString()
		if err != nil {
			return err
		}
		if run2, err := runID(info2); err != nil || run2 != run {
			d.Do(ctx, d.B().ScriptFlush().Build())
			return fmt.Errorf("the Redis process changed during the bootstrap (run_id %s, then %s)", run, run2)
		}
		sc = &scriptSet{run: run}
		if sc.publish, err = execd[1].ToString(); err != nil {
			return err
		}
		sc.head, err = execd[2].ToString()
		return err
	})
	if err != nil {
		return nil, err
	}
	s.scripts.Store(sc)
	s.e.stats.bootstraps.Add(1)
	return sc, nil
}

// runID finds run_id in the reply of INFO server.
func runID(info string) (string, error) {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok && v != "" {
			return v, nil
		}
	}
	return "", errors.New("INFO server has no run_id")
}

// isNoScript reports whether err is Redis's NOSCRIPT: the process that
// answered has not loaded the script (it restarted, or SCRIPT FLUSH).
func isNoScript(err error) bool {
	var re *rueidis.RedisError
	return errors.As(err, &re) && re.IsNoScript()
}
