package broker_test

import (
	"context"
	"slices"
	"testing"

	"github.com/roomcast/roomcast/broker"
)

func TestMembershipsListRoomsAsJoined(t *testing.T) {
	b := newBroker(t)
	s := b.NewSubscriber("S")
	defer s.Close()
	joins := []broker.Membership{
		{Room: "plain"},
		{Room: "left"},
		{Room: "visible", Presence: true},
		{Room: "listening", Events: true},
	}
	for _, m := range joins {
		if _, err := s.Join(context.Background(), m.Room, broker.JoinOptions{Presence: m.Presence, Events: m.Events}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Leave("left"); err != nil {
		t.Fatal(err)
	}
	want := slices.Delete(slices.Clone(joins), 1, 2)
	if got := s.Memberships(); !slices.Equal(got, want) {
		t.Errorf("Memberships() = %+v, want %+v in join order", got, want)
	}
}
