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

func history(t testing.TB, b *broker.Hub, room string, after uint64, limit int, newestFirst bool) *roomcastv1.HistoryResponse {
	t.Helper()
	frame, err := b.History(context.Background(), room, after, limit, 0, newestFirst)
	if err != nil {
		t.Fatal(err)
	}
	var resp roomcastv1.HistoryResponse
	if err := proto.Unmarshal(frame.Materialize(), &resp); err != nil {
		t.Fatal(err)
	}
	return &resp
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

func TestRoomsWithoutHistoryAreFreedWithTheirLastSubscriber(t *testing.T) {
	b := newBroker(t, broker.WithHistory(0, 0))
	s1, s2 := b.NewSubscriber("S1"), b.NewSubscriber("S2")
	s1.Join(context.Background(), "r", broker.JoinOptions{})
	s2.Join(context.Background(), "r", broker.JoinOptions{})
	publish(t, b, "r", "1", "")
	if err := s1.Leave("r"); err != nil {
		t.Fatal(err)
	}
	if b.Stats().Rooms != 1 {
		t.Errorf("rooms %d with one subscriber left", b.Stats().Rooms)
	}
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
