package broker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

func newBroker(t testing.TB, opts ...broker.Option) *broker.Hub {
	t.Helper()
	b, err := broker.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func publish(t testing.TB, b *broker.Hub, room, text, exclude string) uint64 {
	t.Helper()
	off, _, err := b.Publish(context.Background(), &roomcastv1.Message{Room: room, Payload: &roomcastv1.Message_Text{Text: text}}, exclude)
	if err != nil {
		t.Fatal(err)
	}
	return off
}

// decode parses a collected frame the way any gRPC client would.
func decode(t testing.TB, frame mem.BufferSlice) []*roomcastv1.Message {
	t.Helper()
	if frame == nil {
		return nil
	}
	var resp roomcastv1.SubscribeResponse
	if err := proto.Unmarshal(frame.Materialize(), &resp); err != nil {
		t.Fatal(err)
	}
	return resp.GetBatch().GetMessages()
}

func collect(t testing.TB, s *broker.Subscriber, maxBytes int) []*roomcastv1.Message {
	t.Helper()
	frame, err := s.Collect(maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	s.Commit()
	return decode(t, frame)
}

func texts(ms []*roomcastv1.Message) string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s/%d:%s", m.GetRoom(), m.GetOffset(), m.GetText()))
	}
	return fmt.Sprint(out)
}

func TestCollectBatchesAcrossRoomsInOffsetOrder(t *testing.T) {
	b := newBroker(t)
	s := b.NewSubscriber("S1")
	for _, r := range []string{"a", "b"} {
		if res, err := s.Join(context.Background(), r, broker.JoinOptions{}); err != nil || res.Offset != 0 {
			t.Fatalf("join %s: %+v, %v", r, res, err)
		}
	}
	publish(t, b, "a", "1", "")
	publish(t, b, "b", "x", "")
	publish(t, b, "a", "2", "")
	publish(t, b, "a", "3", "S1") // excluded
	got := collect(t, s, 1<<20)
	if want := "[a/1:1 a/2:2 b/1:x]"; texts(got) != want {
		t.Errorf("got %s, want %s", texts(got), want)
	}
	if got := collect(t, s, 1<<20); got != nil {
		t.Errorf("second collect got %s", texts(got))
	}
	if !s.Park() {
		t.Error("Park with nothing new said there is something")
	}
	publish(t, b, "b", "y", "")
	select {
	case <-s.Wake():
	default:
		t.Fatal("publish did not wake the parked subscriber")
	}
	if got := collect(t, s, 1<<20); texts(got) != "[b/2:y]" {
		t.Errorf("after wake got %s", texts(got))
	}
	if st := b.Stats(); st.Encoded != 5 || st.Delivered != 4 {
		t.Errorf("stats %+v", st)
	}
}

// A notified subscriber is told once per room it parked in, and only after
// parking.
func TestNotifiedSubscriberIsCalledOncePerPark(t *testing.T) {
	b := newBroker(t)
	var calls int // publish calls notify on this goroutine
	s := b.NewNotifiedSubscriber("S1", func() { calls++ })
	if s.Wake() != nil {
		t.Error("a notified subscriber has a Wake channel")
	}
	for _, r := range []string{"a", "b"} {
		s.Join(context.Background(), r, broker.JoinOptions{})
	}
	publish(t, b, "a", "1", "")
	if calls != 0 {
		t.Fatalf("notified %d times before parking", calls)
	}
	collect(t, s, 1<<20)
	if !s.Park() {
		t.Fatal("Park with nothing new said there is something")
	}
	publish(t, b, "a", "2", "")
	publish(t, b, "a", "3", "")
	if calls != 1 {
		t.Fatalf("two publishes to a parked room notified %d times, want 1", calls)
	}
	publish(t, b, "b", "1", "")
	if calls != 2 {
		t.Fatalf("a publish to the other parked room made %d notifications in all, want 2", calls)
	}
	if got := collect(t, s, 1<<20); texts(got) != "[b/1:1 a/2:2 a/3:3]" {
		t.Errorf("after notify got %s", texts(got))
	}
}

func TestCollectRespectsMaxBytesButTakesAtLeastOne(t *testing.T) {
	b := newBroker(t)
	s := b.NewSubscriber("S1")
	s.Join(context.Background(), "r", broker.JoinOptions{})
	for i := range 10 {
		publish(t, b, "r", fmt.Sprint(i), "")
	}
	var all []*roomcastv1.Message
	for {
		got := collect(t, s, 1) // every message is larger than one byte
		if got == nil {
			break
		}
		if len(got) != 1 {
			t.Fatalf("collected %d messages with a 1-byte budget", len(got))
		}
		all = append(all, got...)
	}
	if len(all) != 10 || all[9].GetOffset() != 10 {
		t.Errorf("collected %s", texts(all))
	}
}

func TestSubscriberBeyondBacklogLags(t *testing.T) {
	for _, tc := range []struct {
		name     string
		messages int
		bytes    int
		publish  int
		wantLag  bool
	}{
		{"within message limit", 8, 1 << 20, 8, false},
		{"past message limit", 8, 1 << 20, 9, true},
		{"far past message limit", 8, 1 << 20, 100, true},
		{"past byte limit", 1000, 200, 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBroker(t, broker.WithBacklog(tc.messages, tc.bytes))
			s := b.NewSubscriber("S1")
			s.Join(context.Background(), "r", broker.JoinOptions{})
			s.Join(context.Background(), "other", broker.JoinOptions{})
			publish(t, b, "r", "first", "")
			collect(t, s, 1<<20)
			for i := range tc.publish {
				publish(t, b, "r", fmt.Sprint(i), "")
			}
			frame, err := s.Collect(1 << 20)
			var lag *broker.LagError
			if !tc.wantLag {
				if err != nil || len(decode(t, frame)) != tc.publish {
					t.Fatalf("got %d messages, %v", len(decode(t, frame)), err)
				}
				return
			}
			if !errors.As(err, &lag) || frame != nil {
				t.Fatalf("got %v, frame %v; want a LagError and nothing else", err, frame)
			}
			if lag.Room != "r" || lag.Sent["r"] != 1 || lag.Sent["other"] != 0 {
				t.Errorf("lag %+v", lag)
			}
			if b.Stats().Lagged != 1 {
				t.Errorf("stats %+v", b.Stats())
			}
		})
	}
}

func TestRoomsWithoutHistoryAreFreedWithTheirLastSubscriber(t *testing.T) {
	b := newBroker(t, broker.WithHistory(0, 0))
	s1, s2 := b.NewSubscriber("S1"), b.NewSubscriber("S2")
	s1.Join(context.Background(), "r", broker.JoinOptions{})
	s2.Join(context.Background(), "r", broker.JoinOptions{})
	if _, err := s1.Join(context.Background(), "r", broker.JoinOptions{}); !errors.Is(err, broker.ErrAlreadyJoined) {
		t.Errorf("second join: %v", err)
	}
	publish(t, b, "r", "1", "")
	if err := s1.Leave("r"); err != nil {
		t.Fatal(err)
	}
	if err := s1.Leave("r"); !errors.Is(err, broker.ErrNotJoined) {
		t.Errorf("second leave: %v", err)
	}
	if b.Stats().Rooms != 1 {
		t.Errorf("rooms %d with one subscriber left", b.Stats().Rooms)
	}
	s2.Close()
	s2.Close()
	if b.Stats().Rooms != 0 {
		t.Errorf("rooms %d after the last subscriber left", b.Stats().Rooms)
	}
	// Nothing retained, nothing created.
	if off := publish(t, b, "r", "2", ""); off != 1 || b.Stats().Rooms != 0 {
		t.Errorf("publish to a room nobody is in: offset %d, %d rooms", off, b.Stats().Rooms)
	}
}

func TestRoomsWithHistoryAreFreedWhenItExpires(t *testing.T) {
	b := newBroker(t, broker.WithHistory(10, 30*time.Millisecond))
	publish(t, b, "r", "1", "")
	if b.Stats().Rooms != 1 {
		t.Fatalf("rooms %d after a publish with history on", b.Stats().Rooms)
	}
	waitFor(t, func() bool { return b.Stats().Rooms == 0 })
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatal("condition not met within 10s")
		case <-tick.C:
		}
	}
}

func TestPublishAfterCloseFails(t *testing.T) {
	b := newBroker(t)
	b.Close()
	if _, _, err := b.Publish(context.Background(), &roomcastv1.Message{Room: "r"}, ""); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("publish: %v", err)
	}
	if _, err := b.NewSubscriber("S").Join(context.Background(), "r", broker.JoinOptions{}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("join: %v", err)
	}
}

// The benchmark variant really encodes per subscriber, so its figures mean
// what they claim.
func TestEncodePerSubscriberEncodesForEach(t *testing.T) {
	b := newBroker(t, broker.WithEncodePerSubscriber(true))
	subs := []*broker.Subscriber{b.NewSubscriber("A"), b.NewSubscriber("B"), b.NewSubscriber("C")}
	for _, s := range subs {
		s.Join(context.Background(), "r", broker.JoinOptions{})
	}
	publish(t, b, "r", "x", "")
	for _, s := range subs {
		if got := texts(collect(t, s, 1<<20)); got != "[r/1:x]" {
			t.Errorf("got %s", got)
		}
	}
	if st := b.Stats(); st.Encoded != 4 {
		t.Errorf("%d encodes for one message to 3 subscribers, want 1 + 3", st.Encoded)
	}
}

func TestRoomLimit(t *testing.T) {
	b := newBroker(t, broker.WithMaxRooms(2))
	publish(t, b, "a", "1", "")
	publish(t, b, "b", "1", "")
	if _, _, err := b.Publish(context.Background(), &roomcastv1.Message{Room: "c"}, ""); !errors.Is(err, broker.ErrTooManyRooms) {
		t.Errorf("third room by publish: %v", err)
	}
	if _, err := b.NewSubscriber("S").Join(context.Background(), "c", broker.JoinOptions{}); !errors.Is(err, broker.ErrTooManyRooms) {
		t.Errorf("third room by join: %v", err)
	}
	publish(t, b, "a", "2", "") // existing rooms still work
}
