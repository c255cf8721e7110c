package broker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/roomcast/roomcast/broker"
)

// TestRoomsPages checks that Rooms pages through every room once, in name
// order, honouring the prefix, and that each snapshot says what the room
// holds.
func TestRoomsPages(t *testing.T) {
	b := newBroker(t)
	var want []string
	for i := range 25 {
		room := fmt.Sprintf("chat.r%02d", i)
		want = append(want, room)
		for j := 0; j <= i%3; j++ {
			publish(t, b, room, "x", "")
		}
	}
	publish(t, b, "other", "x", "")

	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("Rooms never said it was done")
		}
		rooms, more := b.Rooms(after, "chat.", 10)
		for _, r := range rooms {
			got = append(got, r.Name)
			var i int
			fmt.Sscanf(r.Name, "chat.r%d", &i)
			if n := uint64(i%3 + 1); r.Offset != n || r.Retained != int(n) || r.Bytes == 0 || r.Epoch == "" || r.Newest.IsZero() || r.Subscribers != 0 {
				t.Errorf("room %s: %+v, want offset and retained %d, bytes, an epoch, a newest time and no subscriber", r.Name, r, n)
			}
			if r.Rate <= 0 {
				t.Errorf("room %s: rate %v, want more than 0 just after its publishes", r.Name, r.Rate)
			}
		}
		if !more {
			break
		}
		after = rooms[len(rooms)-1].Name
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages listed %q, want %q", got, want)
	}
	if n := b.RoomCount(); n != 26 {
		t.Errorf("RoomCount %d, want 26", n)
	}
	if _, ok := b.Room("nowhere"); ok {
		t.Error("Room found a room nobody made")
	}
}

// TestRoomRate checks the rate's estimate: messages over the window, or
// over the span of a ring that holds fewer than the window saw.
func TestRoomRate(t *testing.T) {
	b := newBroker(t, broker.WithHistory(4, broker.DefaultHistoryTTL))
	for range 3 {
		publish(t, b, "few", "x", "")
	}
	if r, _ := b.Room("few"); r.Rate != 3/broker.RateWindow.Seconds() {
		t.Errorf("3 messages in a ring that dropped none: rate %v, want %v", r.Rate, 3/broker.RateWindow.Seconds())
	}
	for range 40 {
		publish(t, b, "many", "x", "")
	}
	// The ring holds the last 4 of 40, published within far less than the
	// window: the rate is taken over their span, at least 100 ms.
	if r, _ := b.Room("many"); r.Retained != 4 || r.Rate < 4/0.1-1e-9 || r.Rate <= 4/broker.RateWindow.Seconds() {
		t.Errorf("a ring of 4 that dropped 36: %+v, want the rate over their span", r)
	}
}

// TestCloseRoom checks that closing a room cuts off its subscribers with a
// GapError that says so, fails no one else, drops what it retained, and
// that the room made again afterwards starts anew.
func TestCloseRoom(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t)
	in := b.NewSubscriber("in")
	defer in.Close()
	other := b.NewSubscriber("other")
	defer other.Close()
	for _, room := range []string{"doomed", "kept"} {
		if _, err := in.Join(ctx, room, broker.JoinOptions{Presence: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := other.Join(ctx, "kept", broker.JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "doomed", "one", "")
	publish(t, b, "doomed", "two", "")
	if _, err := in.Collect(1 << 20); err != nil {
		t.Fatal(err)
	}
	in.Commit()
	before, _ := b.Room("doomed")
	retainedBefore := b.Stats().Retained
	if !in.Park() {
		t.Fatal("nothing new, yet Park said to collect")
	}

	subs, dropped, ok, err := b.CloseRoom("doomed")
	if err != nil || !ok || subs != 1 || dropped != 2 {
		t.Fatalf("CloseRoom: %d subscribers, %d dropped, %v, %v; want 1, 2, true, nil", subs, dropped, ok, err)
	}
	select {
	case <-in.Wake():
	default:
		t.Error("closing the room did not wake its parked subscriber")
	}
	_, err = in.Collect(1 << 20)
	var gap *broker.GapError
	if !errors.As(err, &gap) || !gap.Closed || gap.Room != "doomed" || gap.Sent["doomed"] != 2 {
		t.Fatalf("Collect after the close: %v, want a GapError for doomed, closed, sent 2", err)
	}
	if err := in.Leave("doomed"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Collect(1 << 20); err != nil {
		t.Errorf("a subscriber of another room: %v", err)
	}
	if _, ok := b.Room("doomed"); ok {
		t.Error("the closed room is still held")
	}
	if got := b.Stats().Retained; got >= retainedBefore {
		t.Errorf("retained %d bytes after the close, %d before: want less", got, retainedBefore)
	}
	if _, _, ok, _ := b.CloseRoom("doomed"); ok {
		t.Error("closed a room twice")
	}
	if _, err := other.Join(ctx, "doomed", broker.JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	if after, _ := b.Room("doomed"); after.Epoch == before.Epoch || after.Offset != 0 {
		t.Errorf("the room made again: %+v, want a new epoch and no message (before: %+v)", after, before)
	}
	if b.Stats().Lagged != 0 {
		t.Errorf("a closed room counted %d slow consumers", b.Stats().Lagged)
	}
}
