package broker_test

import (
	"errors"
	"testing"

	"github.com/roomcast/roomcast/broker"
)

// A Reset to where the room already is changes nothing; one to elsewhere
// cuts the room's subscribers off as a gap does, and the room then goes on
// from the position given.
func TestResetCutsOffSubscribersUnlessAlreadyThere(t *testing.T) {
	b := newBroker(t)
	s, res := joinAt(t, b, "S", "r", nil)
	b.Deliver("r", remote(t, "r", "1", 1, res.Epoch, ""))
	collect(t, s, 1<<20)

	b.Reset("r", broker.Position{Offset: 1, Epoch: res.Epoch})
	b.Reset("elsewhere", broker.Position{Epoch: "E"}) // not held here
	if !s.Park() {
		t.Fatal("a Reset to the room's own position woke its subscriber")
	}

	b.Reset("r", broker.Position{Offset: 0, Epoch: "NEWEPOCH"})
	var gap *broker.GapError
	if _, err := s.Collect(1 << 20); !errors.As(err, &gap) || gap.Sent["r"] != 1 {
		t.Fatalf("after Reset: %v, want a GapError saying r=1 was sent", err)
	}
	again, res2 := joinAt(t, b, "S2", "r", &broker.Position{Offset: 1, Epoch: res.Epoch})
	if res2.Recovered || res2.Offset != 0 || res2.Epoch != "NEWEPOCH" {
		t.Fatalf("rejoin: %+v, want not recovered at 0 in NEWEPOCH", res2)
	}
	b.Deliver("r", remote(t, "r", "first", 1, "NEWEPOCH", ""))
	if got := texts(collect(t, again, 1<<20)); got != "[r/1:first]" {
		t.Errorf("after the rejoin: %s", got)
	}
}
