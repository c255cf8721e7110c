package broker_test

import (
	"context"
	"testing"

	"github.com/roomcast/roomcast/broker"
)

// A join that makes a room and the leave that frees it, with no message
// between (a client cycling through rooms, attack (e) of issue #13), cost
// the room and its epoch but no ring: the rings take their slots at their
// first entry. Each ring's slots were an allocation of 768 bytes of their
// own.
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
	// The room, its epoch, the pending join, the subscription, and Join's
	// channel and callback.
	const want = 6
	if allocs := testing.AllocsPerRun(200, churn); allocs > want {
		t.Errorf("a join and leave of a new room took %v allocations, want at most %d", allocs, want)
	}
}
