package brokertest

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
)

var resumeCases = append([]testCase{
	{"epoch is stable while the room lives", testEpochStable},
	{"recovered: the gap exactly, then live", testResumeRecovers},
	{"future offset", testResumeFuture},
	{"not recovered: evicted by size", notRecovered(unrecoverableBySize)},
	{"not recovered: evicted by bytes", notRecovered(unrecoverableByBytes)},
	{"not recovered: evicted by age", notRecovered(unrecoverableByAge)},
	{"not recovered: other epoch", notRecovered(unrecoverableOtherEpoch)},
	{"not recovered: room freed", notRecovered(unrecoverableRoomFreed)},
}, boundaryJoinCases()...)

// A room's epoch, once it exists, is the same in every join's result, every
// publish's and every History answer while it lives.
func testEpochStable(t *testing.T, newHub Factory) {
	h := newHub(t)
	a := newReader(t, h, "A")
	first := a.join("r", broker.JoinOptions{})
	if first.Epoch == "" || first.Offset != 0 {
		t.Fatalf("first join of a new room: %+v, want offset 0 and an epoch", first)
	}
	for i := 1; i <= 3; i++ {
		if off, epoch := publish(t, h, "r", fmt.Sprint(i), ""); off != uint64(i) || epoch != first.Epoch {
			t.Errorf("publish %d: offset %d epoch %q, want %d in %q", i, off, epoch, i, first.Epoch)
		}
	}
	if hr := history(t, h, "r", 0, 10, false); hr.GetEpoch() != first.Epoch || hr.GetOffset() != 3 {
		t.Errorf("history says offset %d epoch %q, want 3 in %q", hr.GetOffset(), hr.GetEpoch(), first.Epoch)
	}
	b := newReader(t, h, "B")
	if res := b.join("r", broker.JoinOptions{}); res.Epoch != first.Epoch || res.Offset != 3 {
		t.Errorf("second join: %+v, want offset 3 in %q", res, first.Epoch)
	}
	a.leave("r")
	if _, epoch := publish(t, h, "r", "4", ""); epoch != first.Epoch {
		t.Errorf("publish after the first subscriber left: epoch %q, want %q", epoch, first.Epoch)
	}
	b.expect("r/4:4")
}

// A join from a position whose messages the room still holds is recovered:
// it gets exactly the messages after the position, then the live ones. An
// empty epoch in the position means the current one.
func testResumeRecovers(t *testing.T, newHub Factory) {
	h := newHub(t)
	first := newReader(t, h, "A").join("r", broker.JoinOptions{})
	for i := 1; i <= 5; i++ {
		publish(t, h, "r", fmt.Sprint(i), "")
	}
	b := newReader(t, h, "B")
	if res := b.join("r", broker.JoinOptions{Position: &broker.Position{Offset: 2, Epoch: first.Epoch}}); !res.Recovered || res.Offset != 5 || res.Epoch != first.Epoch {
		t.Fatalf("resume after 2: %+v, want recovered at offset 5 in %q", res, first.Epoch)
	}
	c := newReader(t, h, "C")
	if res := c.join("r", broker.JoinOptions{Position: &broker.Position{Offset: 5}}); !res.Recovered || res.Offset != 5 {
		t.Fatalf("resume after 5 with no epoch: %+v, want recovered at offset 5", res)
	}
	publish(t, h, "r", "6", "")
	b.expect("r/3:3", "r/4:4", "r/5:5", "r/6:6")
	c.expect("r/6:6")
	settle(t, h, []string{"r"}, b, c)
}

// A position past the room's newest offset, in its epoch, is refused.
func testResumeFuture(t *testing.T, newHub Factory) {
	h := newHub(t)
	first := newReader(t, h, "A").join("r", broker.JoinOptions{})
	publish(t, h, "r", "1", "")
	s := newReader(t, h, "S")
	for _, pos := range []broker.Position{{Offset: 2}, {Offset: 2, Epoch: first.Epoch}} {
		if res, err := s.tryJoin("r", broker.JoinOptions{Position: &pos}); !errors.Is(err, broker.ErrFutureOffset) {
			t.Errorf("join after %+v with the room at 1: %+v, %v; want ErrFutureOffset", pos, res, err)
		}
	}
}

// unrecoverable is a room whose history no longer holds what follows a
// position: it makes the hub, fills room "r" and returns the position, with
// the epoch a client would have seen.
type unrecoverable func(t *testing.T, newHub Factory) (*broker.Hub, broker.Position)

// notRecovered is the case of one cause of an unrecoverable gap: the join
// says recovered false and replays nothing; the subscriber goes on with the
// live messages only.
func notRecovered(cause unrecoverable) func(*testing.T, Factory) {
	return func(t *testing.T, newHub Factory) {
		h, pos := cause(t, newHub)
		s := newReader(t, h, "S")
		res := s.join("r", broker.JoinOptions{Position: &pos})
		if res.Recovered {
			t.Fatalf("join after %+v: %+v, want not recovered", pos, res)
		}
		off, epoch := publish(t, h, "r", "live", "")
		if off != res.Offset+1 || epoch != res.Epoch {
			t.Errorf("the join said offset %d in %q, the next publish got %d in %q", res.Offset, res.Epoch, off, epoch)
		}
		s.expect(fmt.Sprintf("r/%d:live", off))
	}
}

func unrecoverableBySize(t *testing.T, newHub Factory) (*broker.Hub, broker.Position) {
	h := newHub(t, broker.WithHistory(3, time.Hour))
	var epoch string
	for i := 1; i <= 10; i++ {
		_, epoch = publish(t, h, "r", fmt.Sprint(i), "")
	}
	return h, broker.Position{Offset: 5, Epoch: epoch} // history holds 8..10
}

func unrecoverableByBytes(t *testing.T, newHub Factory) (*broker.Hub, broker.Position) {
	h := newHub(t, broker.WithBacklog(100, 100))
	var epoch string
	for i := 1; i <= 10; i++ { // each message is more than 10 bytes encoded
		_, epoch = publish(t, h, "r", fmt.Sprint(i), "")
	}
	return h, broker.Position{Offset: 1, Epoch: epoch}
}

func unrecoverableByAge(t *testing.T, newHub Factory) (*broker.Hub, broker.Position) {
	h := newHub(t, broker.WithHistory(100, 20*time.Millisecond))
	newReader(t, h, "K").join("r", broker.JoinOptions{}) // keeps the room, so only age can lose the history
	_, epoch := publish(t, h, "r", "1", "")
	publish(t, h, "r", "2", "")
	waitFor(t, "history to expire", func() bool { return len(history(t, h, "r", 0, 10, false).GetMessages()) == 0 })
	return h, broker.Position{Offset: 1, Epoch: epoch}
}

func unrecoverableOtherEpoch(t *testing.T, newHub Factory) (*broker.Hub, broker.Position) {
	h := newHub(t)
	publish(t, h, "r", "1", "")
	publish(t, h, "r", "2", "")
	return h, broker.Position{Offset: 1, Epoch: "SOMEOTHEREPOCH"}
}

// With history off, a room is freed with its last subscriber: its offsets
// start again in a new epoch.
func unrecoverableRoomFreed(t *testing.T, newHub Factory) (*broker.Hub, broker.Position) {
	h := newHub(t, broker.WithHistory(0, 0))
	old := newReader(t, h, "old")
	res := old.join("r", broker.JoinOptions{})
	publish(t, h, "r", "1", "")
	old.s.Close()
	newReader(t, h, "new").join("r", broker.JoinOptions{})
	publish(t, h, "r", "again", "")
	return h, broker.Position{Offset: 1, Epoch: res.Epoch}
}

// The offsets a client may send that sit on an arithmetic edge, for a room
// whose head is boundsHead and whose history keeps the newest boundsKept.
const boundsHead, boundsKept = 8, 5

func boundaryOffsets() []uint64 {
	return []uint64{0, 1, boundsHead - 1, boundsHead, boundsHead + 1, 1 << 63, math.MaxUint64 - 1, math.MaxUint64}
}

// boundsHub returns a hub whose room "r" holds offsets 4 to 8 of 8.
func boundsHub(t testing.TB, newHub Factory) *broker.Hub {
	h := newHub(t, broker.WithHistory(boundsKept, time.Hour))
	for i := 1; i <= boundsHead; i++ {
		publish(t, h, "r", fmt.Sprint(i), "")
	}
	return h
}

// boundaryJoinCases are joins from each boundary offset: past the head they
// are refused; within the history they replay exactly what follows; before
// it they replay nothing.
func boundaryJoinCases() []testCase {
	var cases []testCase
	for _, off := range boundaryOffsets() {
		cases = append(cases, testCase{fmt.Sprint("join after ", off), func(t *testing.T, newHub Factory) {
			h := boundsHub(t, newHub)
			s := newReader(t, h, "S")
			res, err := s.tryJoin("r", broker.JoinOptions{Position: &broker.Position{Offset: off}})
			if off > boundsHead {
				if !errors.Is(err, broker.ErrFutureOffset) {
					t.Errorf("join after %d: %+v, %v; want ErrFutureOffset", off, res, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("join after %d: %v", off, err)
			}
			// History keeps 4..8, so a resume after 3 or later has no gap.
			if want := off+1 >= boundsHead-boundsKept+1; res.Recovered != want || res.Offset != boundsHead {
				t.Errorf("join after %d: %+v, want recovered %v at offset %d", off, res, want, boundsHead)
			}
			var want []string
			if res.Recovered {
				for o := off + 1; o <= boundsHead; o++ {
					want = append(want, fmt.Sprintf("r/%d:%d", o, o))
				}
			}
			s.expect(want...)
			settle(t, h, []string{"r"}, s)
		}})
	}
	return cases
}
