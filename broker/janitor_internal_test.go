package broker

import (
	"context"
	"testing"
	"time"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A panic in a round of the janitor, under a room's and its shard's locks,
// is counted and leaves no lock held: the hub goes on serving, and the next
// round works.
func TestJanitorPanicReleasesItsLocks(t *testing.T) {
	b, err := New(WithHistory(0, 0)) // no janitor of its own: the test runs its rounds
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := b.NewSubscriber("S") // keeps the room
	if _, err := s.Join(context.Background(), "r", JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	publish := func() {
		t.Helper()
		msg := &roomcastv1.Message{Room: "r", Payload: &roomcastv1.Message_Text{Text: "x"}}
		if _, _, err := b.Publish(context.Background(), msg, ""); err != nil {
			t.Fatal(err)
		}
	}
	publish()
	b.sweepHook = func() { panic("injected") }
	b.sweepOnce(time.Now())
	if got := b.Stats().Panics; got != 1 {
		t.Fatalf("%d panics counted, want 1", got)
	}
	b.sweepHook = nil
	publish() // would block forever on a lock left held
	b.sweepOnce(time.Now())
}
