package brokertest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
)

var historyCases = []testCase{
	{"bounded by size", testHistorySize},
	{"bounded by age", testHistoryAge},
	{"a response bounded by bytes", testHistoryBytes},
	{"after, limit and direction at boundary offsets", testHistoryBoundaries},
	{"unknown room", testHistoryUnknownRoom},
}

// History keeps a room's newest messages up to its size, and serves them
// after an offset, the oldest or the newest first, up to a limit, with the
// room's newest offset and epoch.
func testHistorySize(t *testing.T, newHub Factory) {
	h := newHub(t, broker.WithHistory(5, time.Hour))
	var epoch string
	for i := 1; i <= 8; i++ {
		_, epoch = publish(t, h, "r", fmt.Sprint(i), "")
	}
	for _, tc := range []struct {
		after       uint64
		limit       int
		newestFirst bool
		want        []string
	}{
		{0, 100, false, []string{"r/4:4", "r/5:5", "r/6:6", "r/7:7", "r/8:8"}},
		{0, 2, false, []string{"r/4:4", "r/5:5"}},
		{0, 2, true, []string{"r/8:8", "r/7:7"}},
		{6, 100, false, []string{"r/7:7", "r/8:8"}},
		{6, 100, true, []string{"r/8:8", "r/7:7"}},
		{8, 100, false, []string{}},
	} {
		hr := history(t, h, "r", tc.after, tc.limit, tc.newestFirst)
		if got := msgTexts(hr.GetMessages()); !slices.Equal(got, tc.want) || hr.GetOffset() != 8 || hr.GetEpoch() != epoch {
			t.Errorf("after %d limit %d newest first %v: %v, offset %d, epoch %q; want %v, offset 8, epoch %q",
				tc.after, tc.limit, tc.newestFirst, got, hr.GetOffset(), hr.GetEpoch(), tc.want, epoch)
		}
	}
}

// History keeps a message for its time to live, then drops it.
func testHistoryAge(t *testing.T, newHub Factory) {
	const ttl = 200 * time.Millisecond
	h := newHub(t, broker.WithHistory(10, ttl))
	start := time.Now()
	for i := 1; i <= 3; i++ {
		publish(t, h, "r", fmt.Sprint(i), "")
	}
	hr := history(t, h, "r", 0, 10, false)
	// Each message was published after start: younger than the time to live
	// while less than that has passed since. Later, this shows nothing.
	if time.Since(start) < ttl {
		if got, want := msgTexts(hr.GetMessages()), []string{"r/1:1", "r/2:2", "r/3:3"}; !slices.Equal(got, want) {
			t.Errorf("history within the time to live: %v, want %v", got, want)
		}
	}
	waitFor(t, "history to expire", func() bool { return len(history(t, h, "r", 0, 10, false).GetMessages()) == 0 })
}

// Any after, limit and direction a client can send gives what the model
// says, at every offset where arithmetic could wrap or be off by one.
func testHistoryBoundaries(t *testing.T, newHub Factory) {
	h := boundsHub(t, newHub)
	for _, after := range boundaryOffsets() {
		for _, limit := range []int{1, 2, 1000} {
			for _, newestFirst := range []bool{false, true} {
				hr := history(t, h, "r", after, limit, newestFirst)
				got := msgTexts(hr.GetMessages())
				want := historyModel(boundsHead-boundsKept+1, boundsHead, after, limit, newestFirst)
				if !slices.Equal(got, want) || hr.GetOffset() != boundsHead {
					t.Errorf("after %d limit %d newest first %v: %v (offset %d), want %v (offset %d)", after, limit, newestFirst, got, hr.GetOffset(), want, boundsHead)
				}
			}
		}
	}
}

// FuzzHistory searches the History of hubs made by newHub for any after,
// limit and direction that a client can send and that disagrees with the
// model; the boundary offsets are its seeds. Call it from a fuzz target.
func FuzzHistory(f *testing.F, newHub Factory) {
	for _, after := range boundaryOffsets() {
		f.Add(after, uint16(3), false)
		f.Add(after, uint16(3), true)
	}
	h := boundsHub(f, newHub)
	f.Fuzz(func(t *testing.T, after uint64, limit uint16, newestFirst bool) {
		n := int(limit%1000) + 1 // the server passes 1 to 1000
		got := msgTexts(history(t, h, "r", after, n, newestFirst).GetMessages())
		if want := historyModel(boundsHead-boundsKept+1, boundsHead, after, n, newestFirst); !slices.Equal(got, want) {
			t.Errorf("after %d limit %d newest first %v: %v, want %v", after, n, newestFirst, got, want)
		}
	})
}

// historyModel is what History of room "r" answers when it holds offsets
// first to head, message n's text being n.
func historyModel(first, head, after uint64, limit int, newestFirst bool) []string {
	var offs []uint64
	for off := first; off <= head; off++ {
		if off > after {
			offs = append(offs, off)
		}
	}
	if len(offs) > limit {
		if newestFirst {
			offs = offs[len(offs)-limit:]
		} else {
			offs = offs[:limit]
		}
	}
	if newestFirst {
		slices.Reverse(offs)
	}
	out := []string{}
	for _, off := range offs {
		out = append(out, fmt.Sprintf("r/%d:%d", off, off))
	}
	return out
}

// A room that was never used has no history, no offset and no epoch.
func testHistoryUnknownRoom(t *testing.T, newHub Factory) {
	h := newHub(t)
	publish(t, h, "elsewhere", "x", "")
	if hr := history(t, h, "nowhere", 0, 10, false); len(hr.GetMessages()) != 0 || hr.GetOffset() != 0 || hr.GetEpoch() != "" {
		t.Errorf("history of an unknown room: %v", hr)
	}
}
