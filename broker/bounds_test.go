package broker_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
)

// The offsets a client may send that sit on an arithmetic edge, for a room
// whose head is 8 and whose history keeps 5 messages (offsets 4 to 8).
const boundsHead, boundsKept = 8, 5

func boundaryOffsets() []uint64 {
	return []uint64{0, 1, boundsHead - 1, boundsHead, boundsHead + 1, 1 << 63, math.MaxUint64 - 1, math.MaxUint64}
}

func boundsBroker(t testing.TB) *broker.Hub {
	b := newBroker(t, broker.WithHistory(boundsKept, time.Hour))
	for i := 1; i <= boundsHead; i++ {
		publish(t, b, "r", fmt.Sprint(i), "")
	}
	return b
}

// wantHistory is the model of History over the retained offsets [first, head].
func wantHistory(first, head, after uint64, limit int, newestFirst bool) string {
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
	var out []string
	for i := range offs {
		off := offs[i]
		if newestFirst {
			off = offs[len(offs)-1-i]
		}
		out = append(out, fmt.Sprintf("r/%d:%d", off, off))
	}
	return fmt.Sprint(out)
}

func TestHistoryAtOffsetBoundaries(t *testing.T) {
	b := boundsBroker(t)
	for _, after := range boundaryOffsets() {
		for _, limit := range []int{1, 2, 1000} {
			for _, newestFirst := range []bool{false, true} {
				h := history(t, b, "r", after, limit, newestFirst)
				got := texts(h.GetMessages())
				want := wantHistory(boundsHead-boundsKept+1, boundsHead, after, limit, newestFirst)
				if got != want || h.GetOffset() != boundsHead {
					t.Errorf("after %d limit %d newest %v: %s (offset %d), want %s (offset %d)", after, limit, newestFirst, got, h.GetOffset(), want, boundsHead)
				}
			}
		}
	}
}

func TestJoinPositionAtOffsetBoundaries(t *testing.T) {
	b := boundsBroker(t)
	for _, off := range boundaryOffsets() {
		s := b.NewSubscriber("S")
		res, err := s.Join(context.Background(), "r", broker.JoinOptions{Position: &broker.Position{Offset: off}})
		switch {
		case off > boundsHead:
			if !errors.Is(err, broker.ErrFutureOffset) {
				t.Errorf("join after %d: %+v, %v; want ErrFutureOffset", off, res, err)
			}
		case err != nil:
			t.Errorf("join after %d: %v", off, err)
		default:
			// History keeps 4..8, so a resume after 3 or later has no gap.
			if want := off+1 >= boundsHead-boundsKept+1; res.Recovered != want || res.Offset != boundsHead {
				t.Errorf("join after %d: %+v, want recovered %v at offset %d", off, res, want, boundsHead)
			}
			var wantMsgs []string
			if res.Recovered {
				for o := off + 1; o <= boundsHead; o++ {
					wantMsgs = append(wantMsgs, fmt.Sprintf("r/%d:%d", o, o))
				}
			}
			if got := texts(collect(t, s, 1<<20)); got != fmt.Sprint(wantMsgs) {
				t.Errorf("join after %d replayed %s, want %v", off, got, wantMsgs)
			}
		}
		s.Close()
	}
}

// FuzzHistory checks History against the model for any after, limit and
// direction a client can send.
func FuzzHistory(f *testing.F) {
	for _, after := range boundaryOffsets() {
		f.Add(after, uint16(3), false)
		f.Add(after, uint16(3), true)
	}
	b := boundsBroker(f)
	f.Fuzz(func(t *testing.T, after uint64, limit uint16, newestFirst bool) {
		n := int(limit%1000) + 1 // the server passes 1 to 1000
		h := history(t, b, "r", after, n, newestFirst)
		got := texts(h.GetMessages())
		if want := wantHistory(boundsHead-boundsKept+1, boundsHead, after, n, newestFirst); got != want {
			t.Errorf("after %d limit %d newest %v: %s, want %s", after, n, newestFirst, got, want)
		}
	})
}
