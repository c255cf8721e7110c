package broker_test

import (
	"context"
	"errors"
	"testing"

	"github.com/roomcast/roomcast/broker"
)

func TestBeginJoinIsReadyAtOnceInMemoryAndFinishJoinCompletesIt(t *testing.T) {
	b := newBroker(t)
	s := b.NewSubscriber("S")
	t.Cleanup(s.Close)
	readies := 0
	p, err := s.BeginJoin(context.Background(), "r", broker.JoinOptions{}, func() { readies++ })
	if err != nil || readies != 1 || !p.Ready() || p.Room() != "r" {
		t.Fatalf("begin: %v, ready called %d times, Ready %v", err, readies, p.Ready())
	}
	if s.Rooms() != 1 {
		t.Errorf("a pending join counts as a room: Rooms %d", s.Rooms())
	}
	if _, err := s.BeginJoin(context.Background(), "r", broker.JoinOptions{}, func() {}); !errors.Is(err, broker.ErrAlreadyJoined) {
		t.Errorf("second begin: %v", err)
	}
	publish(t, b, "r", "before the finish", "")
	res, err := s.FinishJoin(p)
	if err != nil || res.Offset != 1 {
		t.Fatalf("finish: %+v, %v", res, err)
	}
	publish(t, b, "r", "after", "")
	if got := texts(collect(t, s, 1<<20)); got != "[r/2:after]" {
		t.Errorf("got %s: a join starts after the newest message when it finishes", got)
	}
}

// A pending join holds its room: cancelling it (by Leave or Close) releases
// the room, and FinishJoin then says so.
func TestLeaveAndCloseCancelAPendingJoin(t *testing.T) {
	for _, how := range []string{"leave", "close"} {
		t.Run(how, func(t *testing.T) {
			b := newBroker(t, broker.WithHistory(0, 0))
			s := b.NewSubscriber("S")
			p, err := s.BeginJoin(context.Background(), "r", broker.JoinOptions{}, func() {})
			if err != nil {
				t.Fatal(err)
			}
			if got := b.Stats().Rooms; got != 1 {
				t.Fatalf("%d rooms while a join is pending, want 1", got)
			}
			if how == "leave" {
				if err := s.Leave("r"); err != nil {
					t.Fatal(err)
				}
			} else {
				s.Close()
			}
			if _, err := s.FinishJoin(p); !errors.Is(err, broker.ErrCancelled) {
				t.Errorf("finish after %s: %v, want ErrCancelled", how, err)
			}
			if got := b.Stats().Rooms; got != 0 || s.Rooms() != 0 {
				t.Errorf("after %s: %d rooms in the hub, %d for the subscriber; want 0", how, got, s.Rooms())
			}
			s.Close()
		})
	}
}
