package brokertest

import (
	"errors"
	"testing"

	"github.com/roomcast/roomcast/broker"
)

var closingCases = []testCase{
	{"leave", testLeave},
	{"join twice, leave twice", testJoinTwice},
	{"subscriber close", testSubscriberClose},
	{"hub close", testHubClose},
}

// After Leave returns, nothing more of the room is collected: neither what
// was published before and not yet taken, nor what is published after. The
// subscriber's other rooms go on.
func testLeave(t *testing.T, newHub Factory) {
	h := newHub(t)
	s := newReader(t, h, "S")
	s.join("a", broker.JoinOptions{})
	s.join("b", broker.JoinOptions{})
	w := newReader(t, h, "W") // once it has a message, the hub holds it for S too
	w.join("a", broker.JoinOptions{})
	publish(t, h, "a", "before", "")
	w.expect("a/1:before")
	s.leave("a")
	publish(t, h, "a", "after", "")
	w.expect("a/2:after")
	off, _ := publish(t, h, "b", "b", "")
	if off != 1 {
		t.Fatalf("first message of b has offset %d", off)
	}
	s.expect("b/1:b")
	settle(t, h, []string{"a", "b"}, s, w)
}

// Joining a room twice, or leaving one not joined, fails and changes
// nothing.
func testJoinTwice(t *testing.T, newHub Factory) {
	h := newHub(t)
	s := newReader(t, h, "S")
	s.join("r", broker.JoinOptions{})
	if _, err := s.tryJoin("r", broker.JoinOptions{}); !errors.Is(err, broker.ErrAlreadyJoined) {
		t.Errorf("second join: %v, want ErrAlreadyJoined", err)
	}
	if err := s.s.Leave("elsewhere"); !errors.Is(err, broker.ErrNotJoined) {
		t.Errorf("leaving a room not joined: %v, want ErrNotJoined", err)
	}
	publish(t, h, "r", "1", "")
	s.expect("r/1:1") // once, though joined "twice"
	settle(t, h, []string{"r"}, s)
	s.leave("r")
	if err := s.s.Leave("r"); !errors.Is(err, broker.ErrNotJoined) {
		t.Errorf("second leave: %v, want ErrNotJoined", err)
	}
}

// Closing a subscriber leaves all its rooms; closing it again does nothing.
func testSubscriberClose(t *testing.T, newHub Factory) {
	h := newHub(t)
	s := newReader(t, h, "S")
	s.join("a", broker.JoinOptions{})
	s.join("b", broker.JoinOptions{Presence: true})
	w := newReader(t, h, "W")
	w.join("a", broker.JoinOptions{})
	w.join("b", broker.JoinOptions{})
	s.s.Close()
	s.s.Close()
	for _, room := range []string{"a", "b"} {
		if err := s.s.Leave(room); !errors.Is(err, broker.ErrNotJoined) {
			t.Errorf("leaving %s after Close: %v, want ErrNotJoined", room, err)
		}
	}
	waitFor(t, "S to leave the presence of b", func() bool { _, _, n := presence(t, h, "b", 10); return n == 0 })
	publish(t, h, "a", "1", "")
	publish(t, h, "b", "1", "")
	w.expectUnordered("a/1:1", "b/1:1")
	if frame, err := s.s.Collect(1 << 20); frame != nil || err != nil {
		t.Errorf("collect after Close: frame %v, error %v; want nothing", frame, err)
	}
}

// After Hub.Close, publishing, joining, and reading history and presence
// fail with ErrClosed. Close is idempotent.
func testHubClose(t *testing.T, newHub Factory) {
	h := newHub(t)
	s := newReader(t, h, "S")
	s.join("r", broker.JoinOptions{})
	if err := h.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := h.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, _, err := h.Publish(t.Context(), textMessage("r", "x"), ""); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("publish: %v, want ErrClosed", err)
	}
	if _, err := s.tryJoin("other", broker.JoinOptions{}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("join by a subscriber made before: %v, want ErrClosed", err)
	}
	if _, err := h.NewSubscriber("T").Join(t.Context(), "r", broker.JoinOptions{}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("join by a subscriber made after: %v, want ErrClosed", err)
	}
	if _, err := h.History(t.Context(), "r", 0, 10, 0, false); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("history: %v, want ErrClosed", err)
	}
	if _, _, err := h.Presence(t.Context(), "r", 10); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("presence: %v, want ErrClosed", err)
	}
}
