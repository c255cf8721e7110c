package brokertest

import (
	"errors"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

var presenceCases = []testCase{
	{"members and limit", testPresenceMembers},
	{"events", testPresenceEvents},
	{"unknown room", testPresenceUnknownRoom},
}

// presence calls Hub.Presence, failing the test if that fails or if
// Hub.PresenceAnswer, decoded, answers otherwise while the presence stays
// the same, and returns the members' session ids with the total.
func presence(t testing.TB, h *broker.Hub, room string, limit int) ([]*roomcastv1.Member, []string, int) {
	t.Helper()
	members, total, err := h.Presence(t.Context(), room, limit)
	if err != nil {
		t.Fatalf("presence of %s: %v", room, err)
	}
	want := &roomcastv1.PresenceResponse{Members: members, Total: uint32(total)}
	answer, err := h.PresenceAnswer(t.Context(), room, limit, 0)
	if err != nil {
		t.Fatalf("presence answer of %s: %v", room, err)
	}
	var got roomcastv1.PresenceResponse
	if err := proto.Unmarshal(answer.Materialize(), &got); err != nil {
		t.Fatalf("presence answer of %s: %v", room, err)
	}
	// A test may wait for a leave that an engine has yet to apply: the
	// answers are compared when Presence answers the same after it.
	again, n, err := h.Presence(t.Context(), room, limit)
	if err != nil {
		t.Fatalf("presence of %s: %v", room, err)
	}
	if proto.Equal(want, &roomcastv1.PresenceResponse{Members: again, Total: uint32(n)}) && !proto.Equal(&got, want) {
		t.Errorf("presence answer of %s: %v, want %v as Presence answers", room, &got, want)
	}
	ids := make([]string, 0, len(members))
	for _, m := range members {
		ids = append(ids, m.GetSessionId())
	}
	return members, ids, total
}

// A room's presence lists the sessions that joined it with presence, oldest
// joins first, with their info, up to the presence limit; leaving, or
// closing the subscriber, takes a session off.
func testPresenceMembers(t *testing.T, newHub Factory) {
	h := newHub(t, broker.WithPresenceLimit(2))
	newReader(t, h, "HIDDEN").join("r", broker.JoinOptions{}) // without presence: not listed, not counted
	alice := newReader(t, h, "ALICE")
	alice.join("r", broker.JoinOptions{Presence: true, Info: map[string]string{"name": "alice"}})
	bob := newReader(t, h, "BOB")
	bob.join("r", broker.JoinOptions{Presence: true})
	carol := newReader(t, h, "CAROL")
	if res, err := carol.tryJoin("r", broker.JoinOptions{Presence: true}); !errors.Is(err, broker.ErrPresenceFull) {
		t.Errorf("a third member with a limit of 2: %+v, %v; want ErrPresenceFull", res, err)
	}

	members, ids, total := presence(t, h, "r", 10)
	if want := []string{"ALICE", "BOB"}; !slices.Equal(ids, want) || total != 2 {
		t.Fatalf("presence: %v of %d, want %v of 2", ids, total, want)
	}
	if members[0].GetInfo()["name"] != "alice" || len(members[1].GetInfo()) != 0 {
		t.Errorf("members' info: %v and %v", members[0].GetInfo(), members[1].GetInfo())
	}
	if a, b := members[0].GetJoinTime().AsTime(), members[1].GetJoinTime().AsTime(); a.IsZero() || b.Before(a) {
		t.Errorf("join times %v then %v, want the oldest first", a, b)
	}
	if _, ids, total := presence(t, h, "r", 1); !slices.Equal(ids, []string{"ALICE"}) || total != 2 {
		t.Errorf("presence with limit 1: %v of %d, want [ALICE] of 2", ids, total)
	}

	alice.s.Close() // disconnecting is leaving
	waitFor(t, "ALICE to leave the presence", func() bool { _, _, n := presence(t, h, "r", 10); return n == 1 })
	carol.join("r", broker.JoinOptions{Presence: true}) // there is room again
	bob.leave("r")
	waitFor(t, "BOB to leave the presence", func() bool {
		_, ids, n := presence(t, h, "r", 10)
		return n == 1 && slices.Equal(ids, []string{"CAROL"})
	})
}

// Join and leave events reach the subscribers that asked for them, and no
// others, each carrying the room's newest offset when it happened; a join
// refused for a full presence announces nothing.
func testPresenceEvents(t *testing.T, newHub Factory) {
	h := newHub(t, broker.WithPresenceLimit(2))
	watcher := newReader(t, h, "W")
	watcher.join("r", broker.JoinOptions{Events: true})
	plain := newReader(t, h, "P")
	plain.join("r", broker.JoinOptions{})
	alice := newReader(t, h, "ALICE")
	alice.join("r", broker.JoinOptions{Presence: true, Info: map[string]string{"name": "alice"}})
	publish(t, h, "r", "hello", "")
	bob := newReader(t, h, "BOB")
	bob.join("r", broker.JoinOptions{Presence: true})
	if _, err := newReader(t, h, "CAROL").tryJoin("r", broker.JoinOptions{Presence: true}); !errors.Is(err, broker.ErrPresenceFull) {
		t.Fatalf("a third member with a limit of 2: %v; want ErrPresenceFull", err)
	}
	alice.s.Close()

	events := watcher.presence(3)
	got := make([]string, 0, len(events))
	for _, ev := range events {
		got = append(got, eventText(ev))
		if ev.GetRoom() != "r" {
			t.Errorf("event %s is of room %q", eventText(ev), ev.GetRoom())
		}
	}
	if want := []string{"JOIN:ALICE@0", "JOIN:BOB@1", "LEAVE:ALICE@1"}; !slices.Equal(got, want) {
		t.Errorf("watcher got events %v, want %v", got, want)
	}
	if info := events[0].GetMember().GetInfo(); info["name"] != "alice" {
		t.Errorf("the join event's member info is %v", info)
	}
	watcher.expect("r/1:hello")
	plain.expect("r/1:hello")

	// The watcher has every event, so the hub holds them: subscribers that
	// did not ask for events would have them by the sentinel.
	settle(t, h, []string{"r"}, watcher, plain, bob)
	for _, r := range []*reader{watcher, plain, bob} {
		for _, ev := range r.events {
			t.Errorf("%s got event %s", r.s.ID(), eventText(ev))
		}
	}
}

// A room that was never used has no members.
func testPresenceUnknownRoom(t *testing.T, newHub Factory) {
	h := newHub(t)
	if members, _, total := presence(t, h, "nowhere", 10); len(members) != 0 || total != 0 {
		t.Errorf("presence of an unknown room: %v of %d", members, total)
	}
}
