package redisengine

import (
	"strconv"

	"github.com/roomcast/roomcast/broker"
)

// Idempotency keys, per room, beside its stream and in the same hash slot:
// a hash (k) of key field → "offset:epoch" and a sorted set (kt) of key
// field → the Redis server's time (ms) when it was remembered. The publish
// script (scripts.go) checks and sets them in the run that sequences the
// message, so that a retry through any node returns the first publish's
// offset and appends nothing. A key is honoured only within
// Config.KeyWindow and while the room keeps the epoch it was remembered
// in: a new epoch deletes them, and each value carries its epoch besides.
//
// Memory is bounded per room by Config.KeysPerRoom (the oldest forgotten
// first, in the script) and in time by the window: both keys expire a
// window after the room's last keyed publish, and each keyed publish drops
// up to 100 expired fields. A key costs its field twice and about 200
// bytes of Redis's own (TestKeysMemoryAtTheCap measures it).

// keyField is the field a key is remembered under: its owner's length
// first, so that no owner and key pair can spell another's.
func keyField(k broker.IdempotencyKey) string {
	return strconv.Itoa(len(k.Owner)) + ":" + k.Owner + k.Key
}

func (e *Engine) keysKey(room string) string     { return e.cfg.Prefix + ":{" + room + "}:k" }
func (e *Engine) keyTimesKey(room string) string { return e.cfg.Prefix + ":{" + room + "}:kt" }
