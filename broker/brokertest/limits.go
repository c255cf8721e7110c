package brokertest

import (
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/roomcast/roomcast/broker"
)

var limitCases = []testCase{
	{"backlog: within the message limit", lagCase(8, 1<<20, 8, false)},
	{"backlog: past the message limit", lagCase(8, 1<<20, 9, true)},
	{"backlog: far past the message limit", lagCase(8, 1<<20, 100, true)},
	{"backlog: past the byte limit", lagCase(1000, 200, 20, true)}, // each message is more than 10 bytes encoded
	{"room limit", testRoomLimit},
}

// lagCase is a subscriber that takes one message of room "r", then none of
// the n published after it, with a backlog of messages and bytes. Within the
// backlog it gets them all; past it, Collect reports a *LagError naming the
// last offset sent in each of its rooms, and nothing else, and says so again
// on the next call: a subscriber is never moved past messages in silence.
func lagCase(messages, bytes, n int, wantLag bool) func(*testing.T, Factory) {
	return func(t *testing.T, newHub Factory) {
		h := newHub(t, broker.WithBacklog(messages, bytes))
		s := newReader(t, h, "S")
		s.join("r", broker.JoinOptions{})
		s.join("other", broker.JoinOptions{})
		// The witness takes each message as it comes, so it never lags; once
		// it has one, the hub holds it for S too.
		w := newReader(t, h, "W")
		w.join("r", broker.JoinOptions{})
		publish(t, h, "r", "first", "")
		s.expect("r/1:first")
		w.expect("r/1:first")
		var want []string
		for i := range n {
			off, _ := publish(t, h, "r", fmt.Sprint(i), "")
			want = append(want, fmt.Sprintf("r/%d:%d", off, i))
			w.expect(want[i])
		}
		if !wantLag {
			s.expect(want...)
			return
		}
		frame, err := s.s.Collect(1 << 20)
		lag, ok := errors.AsType[*broker.LagError](err)
		if !ok || frame != nil {
			t.Fatalf("%d messages behind a backlog of %d messages and %d bytes: frame %v, error %v; want a LagError and nothing else", n, messages, bytes, frame, err)
		}
		if wantSent := map[string]uint64{"r": 1, "other": 0}; lag.Room != "r" || lag.Messages != messages || lag.Bytes != bytes || !maps.Equal(lag.Sent, wantSent) {
			t.Errorf("lag %+v, want room r, limits %d and %d, sent %v", lag, messages, bytes, wantSent)
		}
		if frame, err := s.s.Collect(1 << 20); frame != nil || !errors.As(err, &lag) {
			t.Errorf("collect after a LagError: frame %v, error %v; want the LagError again", frame, err)
		}
		if st := h.Stats(); st.Lagged == 0 {
			t.Errorf("stats count no lagging subscriber: %+v", st)
		}
	}
}

// A join that would hold one room more than WithMaxRooms allows is refused;
// the rooms already held go on working.
func testRoomLimit(t *testing.T, newHub Factory) {
	h := newHub(t, broker.WithMaxRooms(2))
	s := newReader(t, h, "S")
	s.join("a", broker.JoinOptions{})
	s.join("b", broker.JoinOptions{})
	c := newReader(t, h, "C")
	if res, err := c.tryJoin("c", broker.JoinOptions{}); !errors.Is(err, broker.ErrTooManyRooms) {
		t.Errorf("a third room with a limit of 2: %+v, %v; want ErrTooManyRooms", res, err)
	}
	c.join("a", broker.JoinOptions{})
	publish(t, h, "a", "1", "")
	s.expect("a/1:1")
	c.expect("a/1:1")
}
