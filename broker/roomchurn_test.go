package broker_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/roomcast/roomcast/broker"
)

// A join that makes a room and the leave that frees it, with no message
// between (a client cycling through rooms, attack (e) of issue #13), cost
// the room and its epoch but no ring: the rings take their slots at their
// first entry. Each ring's first slots were 768 bytes of their own, twice
// what the rest of a join and leave allocate.
func TestRoomChurnAllocatesNoRing(t *testing.T) {
	b := newBroker(t)
	s := b.NewSubscriber("S")
	ctx := context.Background()
	churn := func() {
		if _, err := s.Join(ctx, "r", broker.JoinOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := s.Leave("r"); err != nil {
			t.Fatal(err)
		}
	}
	churn()
	if _, ok := b.Room("r"); ok {
		t.Fatal("the room outlived its last subscriber with nothing retained")
	}
	const n, want = 1000, 1024
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		churn()
	}
	runtime.ReadMemStats(&after)
	if got := (after.TotalAlloc - before.TotalAlloc) / n; got > want {
		t.Errorf("a join and leave of a new room allocated %d bytes, want at most %d", got, want)
	}
}
