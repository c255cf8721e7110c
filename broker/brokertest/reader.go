package brokertest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// errTimeout is a reader's error when what it waits for has not come in time.
var errTimeout = fmt.Errorf("nothing new within %v", timeout)

// reader drives one subscriber as a connection's writer does: Collect, and
// when there is nothing new, Park and wait to be woken. What it collects is
// decoded as a client would and kept, in the order received, until a case
// takes it. Like the subscriber, it is used by one goroutine at a time.
type reader struct {
	t        testing.TB
	s        *broker.Subscriber
	wake     <-chan struct{} // the subscriber's Wake, or the channel its notify func signals
	maxBytes int             // Collect's budget

	rooms   map[string]bool // joined through the reader
	msgs    []*roomcastv1.Message
	events  []*roomcastv1.PresenceEvent
	batches []int // messages in each frame collected
}

// newReader returns a reader of a subscriber that is woken through Wake. The
// subscriber is closed when the test ends.
func newReader(t testing.TB, h *broker.Hub, id string) *reader {
	s := h.NewSubscriber(id)
	return track(t, s, s.Wake())
}

// newNotifiedReader returns a reader of a subscriber made with
// NewNotifiedSubscriber, whose notify func signals the reader's channel.
func newNotifiedReader(t testing.TB, h *broker.Hub, id string) *reader {
	wake := make(chan struct{}, 1)
	s := h.NewNotifiedSubscriber(id, func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	return track(t, s, wake)
}

func track(t testing.TB, s *broker.Subscriber, wake <-chan struct{}) *reader {
	t.Cleanup(s.Close)
	return &reader{t: t, s: s, wake: wake, maxBytes: 1 << 20, rooms: make(map[string]bool)}
}

// join joins room, failing the test if that fails.
func (r *reader) join(room string, opts broker.JoinOptions) broker.JoinResult {
	r.t.Helper()
	res, err := r.tryJoin(room, opts)
	if err != nil {
		r.t.Fatalf("%s joining %s: %v", r.s.ID(), room, err)
	}
	return res
}

// tryJoin joins room and returns what Join returns.
func (r *reader) tryJoin(room string, opts broker.JoinOptions) (broker.JoinResult, error) {
	res, err := r.s.Join(r.t.Context(), room, opts)
	if err == nil {
		r.rooms[room] = true
	}
	return res, err
}

// leave leaves room, failing the test if that fails.
func (r *reader) leave(room string) {
	r.t.Helper()
	if err := r.s.Leave(room); err != nil {
		r.t.Fatalf("%s leaving %s: %v", r.s.ID(), room, err)
	}
	delete(r.rooms, room)
}

// fill waits until Collect gives a frame and keeps what it holds. It returns
// Collect's error, or errTimeout when nothing came before deadline.
func (r *reader) fill(deadline time.Time) error {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		frame, err := r.s.Collect(r.maxBytes)
		if err != nil {
			return err
		}
		if frame != nil {
			r.s.Commit()
			return r.add(frame)
		}
		if time.Now().After(deadline) { // Park keeps saying there is something, and Collect finds nothing
			return errTimeout
		}
		if !r.s.Park() {
			continue
		}
		select {
		case <-r.wake: // possibly spurious: Collect again
		case <-timer.C:
			return errTimeout
		}
	}
}

// add decodes a collected frame as any gRPC client would.
func (r *reader) add(frame mem.BufferSlice) error {
	var resp roomcastv1.SubscribeResponse
	if err := proto.Unmarshal(frame.Materialize(), &resp); err != nil {
		return fmt.Errorf("undecodable frame: %w", err)
	}
	batch := resp.GetBatch()
	if batch == nil || len(batch.GetMessages())+len(batch.GetPresence()) == 0 {
		return fmt.Errorf("collected a frame that is not a batch of something: %v", &resp)
	}
	r.msgs = append(r.msgs, batch.GetMessages()...)
	r.events = append(r.events, batch.GetPresence()...)
	r.batches = append(r.batches, len(batch.GetMessages()))
	return nil
}

// read waits for n messages and takes them. Safe to call on a goroutine of
// the test's: it reports failure as an error.
func (r *reader) read(n int) ([]*roomcastv1.Message, error) {
	deadline := time.Now().Add(timeout)
	for len(r.msgs) < n {
		if err := r.fill(deadline); err != nil {
			return nil, fmt.Errorf("%s waiting for %d messages, has %d: %w", r.s.ID(), n, len(r.msgs), err)
		}
	}
	got := slices.Clone(r.msgs[:n])
	r.msgs = r.msgs[n:]
	return got, nil
}

// messages waits for n messages and takes them.
func (r *reader) messages(n int) []*roomcastv1.Message {
	r.t.Helper()
	got, err := r.read(n)
	if err != nil {
		r.t.Fatal(err)
	}
	return got
}

// expect waits for as many messages as want has and checks them, written as
// msgText writes them.
func (r *reader) expect(want ...string) {
	r.t.Helper()
	if got := msgTexts(r.messages(len(want))); !slices.Equal(got, want) {
		r.t.Errorf("%s got %v, want %v", r.s.ID(), got, want)
	}
}

// expectUnordered is expect for messages of several rooms, whose order
// across rooms is not part of the contract.
func (r *reader) expectUnordered(want ...string) {
	r.t.Helper()
	got := msgTexts(r.messages(len(want)))
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		r.t.Errorf("%s got %v, want %v in any order", r.s.ID(), got, want)
	}
}

// presence waits for n presence events and takes them.
func (r *reader) presence(n int) []*roomcastv1.PresenceEvent {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for len(r.events) < n {
		if err := r.fill(deadline); err != nil {
			r.t.Fatalf("%s waiting for %d presence events, has %d: %v", r.s.ID(), n, len(r.events), err)
		}
	}
	got := slices.Clone(r.events[:n])
	r.events = r.events[n:]
	return got
}

// settle shows that the readers got nothing more of rooms than they took:
// it publishes a sentinel to each room, then checks that each reader's next
// messages of those rooms are the sentinels of the rooms it joined, and
// nothing else. Within a room delivery is in offset order, so whatever a
// reader was given before a sentinel arrives no later than the sentinel.
func settle(t testing.TB, h *broker.Hub, rooms []string, readers ...*reader) {
	t.Helper()
	sentinels := make(map[string]string, len(rooms))
	for _, room := range rooms {
		off, _ := publish(t, h, room, "sentinel", "")
		sentinels[room] = fmt.Sprintf("%s/%d:sentinel", room, off)
	}
	for _, r := range readers {
		want := make(map[string]bool)
		for _, room := range rooms {
			if r.rooms[room] {
				want[sentinels[room]] = true
			}
		}
		for len(want) > 0 {
			m := msgText(r.messages(1)[0])
			if !want[m] {
				t.Errorf("%s got %s beyond what it was to get", r.s.ID(), m)
			}
			delete(want, m)
		}
		for _, m := range r.msgs {
			if slices.Contains(rooms, m.GetRoom()) {
				t.Errorf("%s got %s after the sentinel", r.s.ID(), msgText(m))
			}
		}
	}
}

// publish publishes text to room, failing the test if that fails, and
// returns the message's offset and the room's epoch.
func publish(t testing.TB, h *broker.Hub, room, text, exclude string) (uint64, string) {
	t.Helper()
	off, epoch, err := h.Publish(t.Context(), textMessage(room, text), exclude)
	if err != nil {
		t.Fatalf("publishing %q to %s: %v", text, room, err)
	}
	return off, epoch
}

func textMessage(room, text string) *roomcastv1.Message {
	return &roomcastv1.Message{Room: room, Payload: &roomcastv1.Message_Text{Text: text}}
}

// msgText writes a message as "room/offset:text".
func msgText(m *roomcastv1.Message) string {
	return fmt.Sprintf("%s/%d:%s", m.GetRoom(), m.GetOffset(), m.GetText())
}

func msgTexts(ms []*roomcastv1.Message) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, msgText(m))
	}
	return out
}

// eventText writes a presence event as "KIND:session@offset".
func eventText(ev *roomcastv1.PresenceEvent) string {
	kind := strings.TrimPrefix(ev.GetKind().String(), "PRESENCE_EVENT_KIND_")
	return fmt.Sprintf("%s:%s@%d", kind, ev.GetMember().GetSessionId(), ev.GetOffset())
}

// waitFor polls cond until it holds, failing the test after the timeout:
// for what no subscriber is told of, such as history expiring.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		<-tick.C
	}
}

// history calls Hub.History and decodes its answer.
func history(t testing.TB, h *broker.Hub, room string, after uint64, limit int, newestFirst bool) *roomcastv1.HistoryResponse {
	t.Helper()
	frame, err := h.History(t.Context(), room, after, limit, 0, newestFirst)
	if err != nil {
		t.Fatalf("history of %s: %v", room, err)
	}
	var resp roomcastv1.HistoryResponse
	if err := proto.Unmarshal(frame.Materialize(), &resp); err != nil {
		t.Fatal(err)
	}
	return &resp
}
