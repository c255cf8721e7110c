package broker_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
)

// The contract suite (brokertest) checks History and joins at the boundary
// offsets for every engine; the fuzz target below searches the in-memory
// hub's History for any other input that disagrees with a model.

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
