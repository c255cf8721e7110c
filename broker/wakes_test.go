package broker_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Publishes under WithWakes notify their parked subscribers at Flush, each
// once per room it parked in, and what they collect is what they would
// have collected woken at once.
func TestWakesHoldNotificationsUntilFlush(t *testing.T) {
	b := newBroker(t)
	var order []string // publish and Flush call notify on this goroutine
	s1 := b.NewNotifiedSubscriber("S1", func() { order = append(order, "S1") })
	s2 := b.NewNotifiedSubscriber("S2", func() { order = append(order, "S2") })
	plain := b.NewSubscriber("P")
	for _, s := range []*broker.Subscriber{s1, s2, plain} {
		for _, r := range []string{"a", "b"} {
			if _, err := s.Join(context.Background(), r, broker.JoinOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if !s.Park() {
			t.Fatal("Park with nothing new said there is something")
		}
	}
	var wakes broker.Wakes
	ctx := broker.WithWakes(context.Background(), &wakes)
	for _, m := range []struct{ room, text string }{{"a", "1"}, {"b", "1"}, {"a", "2"}} {
		if _, _, err := b.PublishWith(ctx, &roomcastv1.Message{Room: m.room, Payload: &roomcastv1.Message_Text{Text: m.text}}, broker.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(order) != 0 {
		t.Fatalf("notified %v before Flush", order)
	}
	select {
	case <-plain.Wake():
		t.Fatal("a plain subscriber was signalled before Flush")
	default:
	}
	if wakes.Len() != 6 {
		t.Errorf("Len = %d, want 6: three subscribers, each parked in two rooms", wakes.Len())
	}
	wakes.Flush()
	if got := fmt.Sprint(order); got != "[S1 S2 S1 S2]" { // room a's waiters, then room b's
		t.Errorf("Flush notified %s, want [S1 S2 S1 S2]", got)
	}
	select {
	case <-plain.Wake():
	default:
		t.Error("Flush did not signal the plain subscriber")
	}
	if wakes.Len() != 0 {
		t.Errorf("Len after Flush = %d", wakes.Len())
	}
	for _, s := range []*broker.Subscriber{s1, s2, plain} {
		if got := texts(collect(t, s, 1<<20)); got != "[a/1:1 a/2:2 b/1:1]" {
			t.Errorf("%s collected %s", s.ID(), got)
		}
	}

	// Emptied, it holds the next run back too; without it, publishes notify at once.
	order = nil
	for _, s := range []*broker.Subscriber{s1, s2} {
		if !s.Park() {
			t.Fatal("Park after Collect said there is something")
		}
	}
	publish(t, b, "b", "2", "")
	if got := fmt.Sprint(order); got != "[S1 S2]" {
		t.Errorf("a publish without Wakes notified %s", got)
	}
}
