package broker_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// remote is an entry as another node's engine would deliver it: the message
// encoded without its offset.
func remote(t testing.TB, room, text string, offset uint64, epoch, exclude string) broker.Entry {
	t.Helper()
	body, err := proto.Marshal(&roomcastv1.Message{Room: room, Payload: &roomcastv1.Message_Text{Text: text}})
	if err != nil {
		t.Fatal(err)
	}
	return broker.Entry{Offset: offset, Epoch: epoch, Time: time.Now().UnixNano(), Exclude: exclude, Body: body}
}

func TestDeliverSharesEntriesSequencedElsewhereWithoutEncoding(t *testing.T) {
	b := newBroker(t)
	a, res := joinAt(t, b, "A", "r", nil)
	c, _ := joinAt(t, b, "C", "r", nil)
	for off := uint64(1); off <= 3; off++ {
		b.Deliver("r", remote(t, "r", fmt.Sprint(off), off, res.Epoch, ""))
	}
	b.Deliver("r", remote(t, "r", "2 again", 2, res.Epoch, ""))     // a duplicate
	b.Deliver("r", remote(t, "r", "not C's", 4, res.Epoch, "C"))    // excluded
	b.Deliver("elsewhere", remote(t, "elsewhere", "x", 1, "E", "")) // not held here
	if got := texts(collect(t, a, 1<<20)); got != "[r/1:1 r/2:2 r/3:3 r/4:not C's]" {
		t.Errorf("A got %s", got)
	}
	if got := texts(collect(t, c, 1<<20)); got != "[r/1:1 r/2:2 r/3:3]" {
		t.Errorf("C got %s", got)
	}
	if st := b.Stats(); st.Encoded != 0 || st.Received != 4 {
		t.Errorf("stats %+v: want no encode and 4 entries received", st)
	}
	// A local resume is served from the same entries.
	s, res2 := joinAt(t, b, "S", "r", &broker.Position{Offset: 2, Epoch: res.Epoch})
	if !res2.Recovered || res2.Offset != 4 {
		t.Fatalf("resume: %+v", res2)
	}
	if got := texts(collect(t, s, 1<<20)); got != "[r/3:3 r/4:not C's]" {
		t.Errorf("resumed %s", got)
	}
	if got := texts(history(t, b, "r", 0, 10, false).GetMessages()); got != "[r/1:1 r/2:2 r/3:3 r/4:not C's]" {
		t.Errorf("history %s", got)
	}
}

// After a gap or a new epoch, a room's subscribers are told, with the offsets
// they were sent, and never moved past the loss in silence.
func TestDeliverCutsOffSubscribersAtAGapOrANewEpoch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		offset uint64
		epoch  func(old string) string
	}{
		{"gap", 5, func(old string) string { return old }},
		{"new epoch", 1, func(string) string { return "NEWEPOCH" }},
		{"new epoch, later offset", 3, func(string) string { return "NEWEPOCH" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBroker(t)
			s, res := joinAt(t, b, "S", "r", nil)
			idle, _ := joinAt(t, b, "I", "r", nil)
			if !idle.Park() {
				t.Fatal("nothing to collect yet, but Park says there is")
			}
			b.Deliver("r", remote(t, "r", "1", 1, res.Epoch, ""))
			b.Deliver("r", remote(t, "r", "2", 2, res.Epoch, ""))
			collect(t, s, 1<<20)
			epoch := tc.epoch(res.Epoch)
			b.Deliver("r", remote(t, "r", "after", tc.offset, epoch, ""))

			for _, sub := range []*broker.Subscriber{s, idle} {
				if sub.Park() {
					t.Errorf("%s parked past a broken sequence", sub.ID())
				}
				frame, err := sub.Collect(1 << 20)
				var gap *broker.GapError
				if !errors.As(err, &gap) || frame != nil || gap.Room != "r" {
					t.Fatalf("%s: %v, frame %v; want a GapError and nothing else", sub.ID(), err, frame)
				}
			}
			var gap *broker.GapError
			if _, err := s.Collect(1 << 20); !errors.As(err, &gap) || gap.Sent["r"] != 2 {
				t.Errorf("again: %v, want a GapError saying r=2 was sent", err)
			}

			// The rejoin cannot recover, and then follows the new sequence.
			again, res2 := joinAt(t, b, "S2", "r", &broker.Position{Offset: 2, Epoch: res.Epoch})
			if res2.Recovered || res2.Offset != tc.offset || res2.Epoch != epoch {
				t.Errorf("rejoin: %+v, want not recovered at %d in %s", res2, tc.offset, epoch)
			}
			b.Deliver("r", remote(t, "r", "next", tc.offset+1, epoch, ""))
			if got, want := texts(collect(t, again, 1<<20)), fmt.Sprintf("[r/%d:next]", tc.offset+1); got != want {
				t.Errorf("after the rejoin: %s, want %s", got, want)
			}
		})
	}
}
