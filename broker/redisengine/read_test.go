package redisengine_test

import (
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/internal/redistest"
)

func offsetsOf(entries []broker.Entry) string { return fmt.Sprint(offsetList(entries)) }

func offsetList(entries []broker.Entry) []uint64 {
	out := make([]uint64, 0, len(entries))
	for _, en := range entries {
		out = append(out, en.Offset)
	}
	return out
}

// Read's boundaries: limits, both orders, positions at, past and far past
// the head (2^64-1 must not wrap), a room never published, and the size
// bound.
func TestReadBoundaries(t *testing.T) {
	srv := redistest.Start(t)
	e := newEngine(t, redisengine.Config{HistoryMessages: 6}, srv)
	for i := range 10 {
		if _, _, err := e.Publish(testCtx(t), "r", body("r", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		after  uint64
		limit  int
		newest bool
		want   string
	}{
		{0, 3, false, "[5 6 7]"}, // the stream keeps the 6 newest
		{0, 3, true, "[10 9 8]"},
		{0, 100, false, "[5 6 7 8 9 10]"}, // limit past the history size
		{0, 100, true, "[10 9 8 7 6 5]"},
		{7, 10, false, "[8 9 10]"},
		{7, 2, true, "[10 9]"},
		{7, 2, false, "[8 9]"},
		{9, 1, false, "[10]"},
		{10, 5, false, "[]"}, // at the head
		{11, 5, false, "[]"}, // past it
		{math.MaxUint64, 5, false, "[]"},
		{math.MaxUint64, 5, true, "[]"},
		{math.MaxUint64 - 1, 5, false, "[]"},
		{0, 0, false, "[]"},
		{0, -1, true, "[]"},
	} {
		head, entries, err := e.Read(testCtx(t), "r", tc.after, tc.limit, tc.newest)
		if err != nil {
			t.Fatal(err)
		}
		if got := offsetsOf(entries); got != tc.want || head.Offset != 10 || head.Epoch == "" {
			t.Errorf("Read(after %d, limit %d, newest %v) = %s at %+v; want %s at 10", tc.after, tc.limit, tc.newest, got, head, tc.want)
		}
		for _, en := range entries {
			if en.Epoch != head.Epoch || string(en.Body) != string(body("r", int(en.Offset-1))) {
				t.Errorf("entry %d: %q of %s", en.Offset, en.Body, en.Epoch)
			}
		}
	}
	head, entries, err := e.Read(testCtx(t), "never", 0, 10, false)
	if err != nil || head != (broker.Position{}) || len(entries) != 0 {
		t.Errorf("a room never published: %+v, %d entries, %v", head, len(entries), err)
	}
	if n, err := srv.Do(t, "EXISTS", "rc:{never}:m").AsInt64(); err != nil || n != 0 {
		t.Errorf("Read made the hash of a room never published (%d, %v)", n, err)
	}
}

// Entries older than HistoryTTL are not served, and oldest first Read reads
// on past them to the retained ones. The room is written by hand, with old
// publish times, so that nothing waits.
func TestReadLeavesOutEntriesOlderThanTheTTL(t *testing.T) {
	srv := redistest.Start(t)
	const ttl = time.Minute
	e := newEngine(t, redisengine.Config{HistoryTTL: ttl}, srv)
	if err := srv.Do(t, "HSET", "rc:{r}:m", "e", "EPOCH", "r", srv.RunID(t), "s", "8").Error(); err != nil {
		t.Fatal(err)
	}
	old, fresh := time.Now().Add(-2*ttl).UnixNano(), time.Now().UnixNano()
	for off := 1; off <= 8; off++ {
		at := old
		if off >= 6 {
			at = fresh
		}
		if err := srv.Do(t, "XADD", "rc:{r}:h", strconv.Itoa(off), "d", "x", "t", strconv.FormatInt(at, 10)).Error(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		after  uint64
		limit  int
		newest bool
		want   string
	}{
		{0, 2, false, "[6 7]"}, // two batches of stale entries first
		{0, 100, false, "[6 7 8]"},
		{0, 100, true, "[8 7 6]"},
		{0, 3, true, "[8 7 6]"},
		{3, 1, false, "[6]"},
		{6, 5, false, "[7 8]"},
	} {
		head, entries, err := e.Read(testCtx(t), "r", tc.after, tc.limit, tc.newest)
		if err != nil {
			t.Fatal(err)
		}
		if got := offsetsOf(entries); got != tc.want || head != (broker.Position{Offset: 8, Epoch: "EPOCH"}) {
			t.Errorf("Read(after %d, limit %d, newest %v) = %s at %+v; want %s at 8/EPOCH", tc.after, tc.limit, tc.newest, got, head, tc.want)
		}
	}
	// Track's backfill follows the same rule.
	head, backfill, err := e.Track(testCtx(t), "r", &broker.Position{Offset: 2, Epoch: "EPOCH"}, 100)
	if err != nil || head.Offset != 8 || offsetsOf(backfill) != "[6 7 8]" {
		t.Errorf("Track from 2: %+v, %s, %v; want [6 7 8] at 8", head, offsetsOf(backfill), err)
	}
	// And a backfill is only of the room's epoch.
	if _, backfill, err := e.Track(testCtx(t), "r", &broker.Position{Offset: 2, Epoch: "OTHER"}, 100); err != nil || len(backfill) != 0 {
		t.Errorf("Track from another epoch: %s, %v; want nothing", offsetsOf(backfill), err)
	}
}
