package redisengine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/roomcast/roomcast/broker"
)

// query is a read of a room: its position, and entries of its stream after
// an offset.
type query struct {
	create bool   // give the room an epoch of this process if it has none (else report it has none)
	after  uint64 // entries with offsets after this
	limit  int    // at most this many; 0 reads none
	newest bool   // the newest limit entries after after, rather than the oldest
}

// snapshot is what a read found, as of one moment: the room's epoch ("" if
// it has none of this Redis process) and newest offset, and the entries
// asked for, oldest first, all of that epoch and up to head.
type snapshot struct {
	epoch   string
	head    uint64
	entries []broker.Entry
}

// read runs q as one transaction: MULTI, the head script, XRANGE (or
// XREVRANGE), EXEC. The entries never pass through Lua, which would cost
// far more than the plain command.
func (s *shard) read(ctx context.Context, room string, q query) (snapshot, error) {
	e := s.e
	candidate := ""
	if q.create {
		candidate = newEpoch()
	}
	keys := []string{e.metaKey(room), e.streamKey(room)}
	hist := keys[1]
	for attempt := 0; ; attempt++ {
		sc, err := s.current(ctx)
		if err != nil {
			return snapshot{}, err
		}
		c := s.client
		cmds := rueidis.Commands{
			c.B().Multi().Build(),
			c.B().Evalsha().Sha1(sc.head).Numkeys(2).Key(keys...).Arg(candidate, ms(e.cfg.MetaTTL)).Build(),
		}
		ranged := q.limit > 0 && q.after < math.MaxUint64 // no offset lies after 2^64-1
		if ranged {
			from := strconv.FormatUint(q.after+1, 10)
			if q.newest {
				cmds = append(cmds, c.B().Xrevrange().Key(hist).End("+").Start(from).Count(int64(q.limit)).Build())
			} else {
				cmds = append(cmds, c.B().Xrange().Key(hist).Start(from).End("+").Count(int64(q.limit)).Build())
			}
		}
		cmds = append(cmds, c.B().Exec().Build())
		res := c.DoMulti(ctx, cmds...)
		replies, err := res[len(res)-1].ToArray()
		if err == nil && len(replies) > 0 {
			err = replies[0].Error()
		}
		if isNoScript(err) && attempt == 0 {
			if _, err := s.bootstrap(ctx, sc); err != nil {
				return snapshot{}, err
			}
			continue
		}
		if err != nil {
			return snapshot{}, err
		}
		return parseSnapshot(replies, ranged, q.newest)
	}
}

func parseSnapshot(replies []rueidis.RedisMessage, ranged, newest bool) (snapshot, error) {
	var snap snapshot
	if want := 1 + btoi(ranged); len(replies) != want {
		return snap, fmt.Errorf("redisengine: EXEC answered %d replies, want %d", len(replies), want)
	}
	pos, err := replies[0].ToArray()
	if err != nil {
		return snap, err
	}
	if len(pos) == 0 {
		return snap, nil // no epoch of this process: nothing retained
	}
	if len(pos) != 2 {
		return snap, errors.New("redisengine: head script answered a malformed position")
	}
	if snap.epoch, err = pos[0].ToString(); err != nil {
		return snap, err
	}
	if snap.head, err = pos[1].AsUint64(); err != nil {
		return snap, err
	}
	if !ranged {
		return snap, nil
	}
	raw, err := replies[1].ToArray()
	if err != nil {
		return snap, err
	}
	snap.entries = make([]broker.Entry, 0, len(raw))
	for i := range raw {
		x, err := raw[i].AsXRangeSlice()
		if err != nil {
			return snap, err
		}
		en, err := entryOf(x, snap.epoch)
		if err != nil {
			return snap, err
		}
		if en.Offset <= snap.head { // a stream ahead of its hash is not the room's
			snap.entries = append(snap.entries, en)
		}
	}
	if newest {
		for i, j := 0, len(snap.entries)-1; i < j; i, j = i+1, j-1 {
			snap.entries[i], snap.entries[j] = snap.entries[j], snap.entries[i]
		}
	}
	return snap, nil
}

// entryOf is the entry of a stream record: ID <offset>-0, fields d (body),
// t (time), x (excluded session, if any).
func entryOf(x rueidis.XRangeSlice, epoch string) (broker.Entry, error) {
	id, _, _ := strings.Cut(x.ID, "-")
	off, err := strconv.ParseUint(id, 10, 64)
	if err != nil || off == 0 {
		return broker.Entry{}, fmt.Errorf("redisengine: stream entry ID %q is not an offset", x.ID)
	}
	en := broker.Entry{Offset: off, Epoch: epoch}
	for _, fv := range x.FieldValues {
		switch fv.Field {
		case "d":
			en.Body = []byte(fv.Value)
		case "t":
			en.Time, _ = strconv.ParseInt(fv.Value, 10, 64)
		case "x":
			en.Exclude = fv.Value
		}
	}
	return en, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Read implements broker.Engine: the room's position and its retained
// entries after after (the oldest limit of them, or with newestFirst the
// newest, newest first), read in one transaction. Retained means among the
// room's Config.HistoryMessages newest and not older than Config.HistoryTTL.
// A room with no epoch of the current Redis process (never published, or
// its history lost) has the zero position and no entries. Safe for
// concurrent use.
func (e *Engine) Read(ctx context.Context, room string, after uint64, limit int, newestFirst bool) (broker.Position, []broker.Entry, error) {
	if e.isClosed() {
		return broker.Position{}, nil, broker.ErrClosed
	}
	s := e.shardOf(room)
	bctx, cancel := e.bound(ctx)
	defer cancel()
	limit = max(min(limit, e.cfg.HistoryMessages), 0)
	var out []broker.Entry
	var head broker.Position
	now := time.Now()
	for {
		want := limit - len(out)
		snap, err := s.read(bctx, room, query{after: after, limit: want, newest: newestFirst})
		if err != nil {
			return broker.Position{}, nil, e.unavailable(ctx, s, err)
		}
		if head.Epoch != "" && snap.epoch != head.Epoch {
			out = out[:0] // a new epoch between two reads: start again in it
		}
		head = broker.Position{Offset: snap.head, Epoch: snap.epoch}
		if len(out) == 0 {
			out = append(out, e.retained(snap.entries, snap.head, now)...)
		} else {
			out = append(out, snap.entries...) // past the first retained entry, all are
		}
		// Oldest first, a batch that began with entries too old to serve
		// may hide retained ones behind it: read on.
		if newestFirst || len(snap.entries) < want || len(out) >= limit {
			break
		}
		after = snap.entries[len(snap.entries)-1].Offset
	}
	if newestFirst {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return head, out, nil
}

// retained is the part of entries (oldest first, a contiguous range up to
// head) that history serves at now: among the HistoryMessages newest
// offsets, and from the first entry that is not older than HistoryTTL on,
// as the hub's own history does.
func (e *Engine) retained(entries []broker.Entry, head uint64, now time.Time) []broker.Entry {
	var start uint64 = 1
	if n := uint64(e.cfg.HistoryMessages); head > n {
		start = head - n + 1
	}
	cutoff := now.Add(-e.cfg.HistoryTTL).UnixNano()
	i := 0
	for i < len(entries) && (entries[i].Offset < start || entries[i].Time < cutoff) {
		i++
	}
	return entries[i:]
}
