package broker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

func history(t testing.TB, b *broker.Hub, room string, after uint64, limit int, newestFirst bool) *roomcastv1.HistoryResponse {
	t.Helper()
	frame, err := b.History(context.Background(), room, after, limit, newestFirst)
	if err != nil {
		t.Fatal(err)
	}
	var resp roomcastv1.HistoryResponse
	if err := proto.Unmarshal(frame.Materialize(), &resp); err != nil {
		t.Fatal(err)
	}
	return &resp
}

func TestHistory(t *testing.T) {
	b := newBroker(t, broker.WithHistory(5, time.Hour))
	for i := 1; i <= 8; i++ {
		publish(t, b, "r", fmt.Sprint(i), "")
	}
	for _, tc := range []struct {
		after       uint64
		limit       int
		newestFirst bool
		want        string
	}{
		{0, 100, false, "[r/4:4 r/5:5 r/6:6 r/7:7 r/8:8]"},
		{0, 2, false, "[r/4:4 r/5:5]"},
		{0, 2, true, "[r/8:8 r/7:7]"},
		{6, 100, false, "[r/7:7 r/8:8]"},
		{6, 100, true, "[r/8:8 r/7:7]"},
		{8, 100, false, "[]"},
	} {
		h := history(t, b, "r", tc.after, tc.limit, tc.newestFirst)
		if got := texts(h.GetMessages()); got != tc.want || h.GetOffset() != 8 || h.GetEpoch() == "" {
			t.Errorf("after %d limit %d newest %v: %s offset %d epoch %q, want %s", tc.after, tc.limit, tc.newestFirst, got, h.GetOffset(), h.GetEpoch(), tc.want)
		}
	}
	if h := history(t, b, "nowhere", 0, 10, false); len(h.GetMessages()) != 0 || h.GetOffset() != 0 || h.GetEpoch() != "" {
		t.Errorf("history of an unknown room: %v", h)
	}
}

func joinAt(t testing.TB, b *broker.Hub, id, room string, pos *broker.Position) (*broker.Subscriber, broker.JoinResult) {
	t.Helper()
	s := b.NewSubscriber(id)
	res, err := s.Join(context.Background(), room, broker.JoinOptions{Position: pos})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, res
}

func TestResumeReplaysExactlyTheGap(t *testing.T) {
	b := newBroker(t)
	_, first := joinAt(t, b, "A", "r", nil)
	for i := 1; i <= 5; i++ {
		publish(t, b, "r", fmt.Sprint(i), "")
	}
	s, res := joinAt(t, b, "B", "r", &broker.Position{Offset: 2, Epoch: first.Epoch})
	if !res.Recovered || res.Offset != 5 || res.Epoch != first.Epoch {
		t.Fatalf("resume: %+v", res)
	}
	publish(t, b, "r", "6", "")
	if got := texts(collect(t, s, 1<<20)); got != "[r/3:3 r/4:4 r/5:5 r/6:6]" {
		t.Errorf("got %s", got)
	}
	// An empty epoch means the current one.
	s2, res := joinAt(t, b, "C", "r", &broker.Position{Offset: 5})
	if !res.Recovered {
		t.Fatalf("resume with no epoch: %+v", res)
	}
	if got := texts(collect(t, s2, 1<<20)); got != "[r/6:6]" {
		t.Errorf("got %s", got)
	}
	if _, err := b.NewSubscriber("D").Join(context.Background(), "r", broker.JoinOptions{Position: &broker.Position{Offset: 7}}); !errors.Is(err, broker.ErrFutureOffset) {
		t.Errorf("resume from the future: %v", err)
	}
}

// Each cause of an unrecoverable gap gives recovered=false and replays
// nothing: the subscriber continues with live messages only.
func TestResumeThatCannotRecoverReplaysNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  []broker.Option
		setup func(t *testing.T, b *broker.Hub) broker.Position
	}{
		{"evicted by size", []broker.Option{broker.WithHistory(3, time.Hour)}, func(t *testing.T, b *broker.Hub) broker.Position {
			for i := 1; i <= 10; i++ {
				publish(t, b, "r", fmt.Sprint(i), "")
			}
			return broker.Position{Offset: 5}
		}},
		{"evicted by bytes", []broker.Option{broker.WithBacklog(100, 100)}, func(t *testing.T, b *broker.Hub) broker.Position {
			for i := 1; i <= 10; i++ {
				publish(t, b, "r", fmt.Sprint(i), "")
			}
			return broker.Position{Offset: 1}
		}},
		{"evicted by age", []broker.Option{broker.WithHistory(100, 20*time.Millisecond)}, func(t *testing.T, b *broker.Hub) broker.Position {
			keep := b.NewSubscriber("K") // keeps the room, so only age can lose the history
			keep.Join(context.Background(), "r", broker.JoinOptions{})
			t.Cleanup(keep.Close)
			publish(t, b, "r", "1", "")
			publish(t, b, "r", "2", "")
			waitFor(t, func() bool { return len(history(t, b, "r", 0, 10, false).GetMessages()) == 0 })
			return broker.Position{Offset: 1}
		}},
		{"other epoch", nil, func(t *testing.T, b *broker.Hub) broker.Position {
			publish(t, b, "r", "1", "")
			publish(t, b, "r", "2", "")
			return broker.Position{Offset: 1, Epoch: "SOMEOTHEREPOCH"}
		}},
		{"room freed", []broker.Option{broker.WithHistory(0, 0)}, func(t *testing.T, b *broker.Hub) broker.Position {
			s, res := joinAt(t, b, "old", "r", nil)
			publish(t, b, "r", "1", "")
			s.Close() // frees the room: its offsets start again in a new epoch
			s2, _ := joinAt(t, b, "new", "r", nil)
			_ = s2
			publish(t, b, "r", "again", "")
			return broker.Position{Offset: 1, Epoch: res.Epoch}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBroker(t, tc.opts...)
			pos := tc.setup(t, b)
			s, res := joinAt(t, b, "S", "r", &pos)
			if res.Recovered {
				t.Fatalf("recovered: %+v", res)
			}
			if got := collect(t, s, 1<<20); got != nil {
				t.Errorf("replayed %s after a failed recovery", texts(got))
			}
			off := publish(t, b, "r", "live", "")
			if got := texts(collect(t, s, 1<<20)); got != fmt.Sprintf("[r/%d:live]", off) {
				t.Errorf("then got %s", got)
			}
		})
	}
}

func TestPresence(t *testing.T) {
	b := newBroker(t, broker.WithPresenceLimit(2))
	watcher := b.NewSubscriber("W")
	t.Cleanup(watcher.Close)
	if _, err := watcher.Join(context.Background(), "r", broker.JoinOptions{Events: true}); err != nil {
		t.Fatal(err)
	}
	alice := b.NewSubscriber("ALICE")
	if _, err := alice.Join(context.Background(), "r", broker.JoinOptions{Presence: true, Info: map[string]string{"name": "alice"}}); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "r", "hello", "")
	bob := b.NewSubscriber("BOB")
	t.Cleanup(bob.Close)
	if _, err := bob.Join(context.Background(), "r", broker.JoinOptions{Presence: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.NewSubscriber("CAROL").Join(context.Background(), "r", broker.JoinOptions{Presence: true}); !errors.Is(err, broker.ErrPresenceFull) {
		t.Errorf("third member: %v", err)
	}
	members, total, err := b.Presence(context.Background(), "r", 10)
	if err != nil || total != 2 || len(members) != 2 || members[0].GetSessionId() != "ALICE" || members[0].GetInfo()["name"] != "alice" || members[1].GetSessionId() != "BOB" {
		t.Fatalf("presence: %v %d %v", members, total, err)
	}
	if members, total, _ := b.Presence(context.Background(), "r", 1); len(members) != 1 || total != 2 {
		t.Errorf("presence with limit 1: %d of %d", len(members), total)
	}
	alice.Close() // disconnecting is leaving

	frame, err := watcher.Collect(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	var resp roomcastv1.SubscribeResponse
	if err := proto.Unmarshal(frame.Materialize(), &resp); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range resp.GetBatch().GetPresence() {
		got = append(got, fmt.Sprintf("%s:%s@%d", ev.GetKind(), ev.GetMember().GetSessionId(), ev.GetOffset()))
	}
	want := "[PRESENCE_EVENT_KIND_JOIN:ALICE@0 PRESENCE_EVENT_KIND_JOIN:BOB@1 PRESENCE_EVENT_KIND_LEAVE:ALICE@1]"
	if fmt.Sprint(got) != want || texts(resp.GetBatch().GetMessages()) != "[r/1:hello]" {
		t.Errorf("watcher got events %v and messages %s, want %s", got, texts(resp.GetBatch().GetMessages()), want)
	}
	if _, total, _ := b.Presence(context.Background(), "r", 10); total != 1 {
		t.Errorf("%d members after alice left", total)
	}
}

// A presence event wakes the listeners and leaves the other parked
// subscribers parked.
func TestPresenceEventsWakeOnlyListeners(t *testing.T) {
	b := newBroker(t)
	listener, other := b.NewSubscriber("L"), b.NewSubscriber("O")
	t.Cleanup(listener.Close)
	t.Cleanup(other.Close)
	listener.Join(context.Background(), "r", broker.JoinOptions{Events: true})
	other.Join(context.Background(), "r", broker.JoinOptions{})
	listener.Park()
	other.Park()
	joiner := b.NewSubscriber("J")
	t.Cleanup(joiner.Close)
	joiner.Join(context.Background(), "r", broker.JoinOptions{Presence: true})
	select {
	case <-listener.Wake():
	default:
		t.Error("the listener was not woken by a join")
	}
	select {
	case <-other.Wake():
		t.Error("a subscriber that asked for no events was woken by one")
	default:
	}
	publish(t, b, "r", "m", "")
	select {
	case <-other.Wake():
	default:
		t.Error("the other subscriber, still parked, was not woken by a message")
	}
}
