package redisengine_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/redistest"
)

func ids(ms []*roomcastv1.Member) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.GetSessionId())
	}
	return fmt.Sprint(out)
}

// Members added on two nodes are listed by a third, oldest joins first,
// with their info; the limit holds across nodes; a removed member is gone;
// and every join and leave is published to the nodes tracking the room.
func TestPresenceAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	cfg := redisengine.Config{PresenceMembers: 3}
	a, b, c := newEngine(t, cfg, srv), newEngine(t, cfg, srv), newEngine(t, cfg, srv)
	if _, _, err := c.Track(testCtx(t), "r", nil, 0); err != nil {
		t.Fatal(err)
	}
	for i, n := range []*redisengine.Engine{a, b, a} {
		if err := n.AddMember(testCtx(t), "r", fmt.Sprint("s", i), map[string]string{"name": fmt.Sprint("user", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.AddMember(testCtx(t), "r", "s3", nil); !errors.Is(err, broker.ErrPresenceFull) {
		t.Fatalf("a fourth member: %v, want ErrPresenceFull", err)
	}
	if err := b.AddMember(testCtx(t), "r", "s1", map[string]string{"name": "again"}); err != nil {
		t.Fatalf("a listed member again: %v", err)
	}
	ms, total, err := c.Members(testCtx(t), "r", 10)
	if err != nil || total != 3 || ids(ms) != "[s0 s2 s1]" {
		t.Fatalf("Members: %s of %d, %v; want [s0 s2 s1] of 3", ids(ms), total, err)
	}
	if ms[0].GetInfo()["name"] != "user0" || ms[2].GetInfo()["name"] != "again" || ms[0].GetJoinTime() == nil {
		t.Fatalf("members: %v", ms)
	}
	if ms, total, err := c.Members(testCtx(t), "r", 2); err != nil || total != 3 || ids(ms) != "[s0 s2]" {
		t.Fatalf("Members, limit 2: %s of %d, %v", ids(ms), total, err)
	}
	if err := a.RemoveMember(testCtx(t), "r", "s0"); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveMember(testCtx(t), "r", "s0"); err != nil { // not listed: nothing
		t.Fatal(err)
	}
	if ms, total, err := c.Members(testCtx(t), "r", 10); err != nil || total != 2 || ids(ms) != "[s2 s1]" {
		t.Fatalf("after a leave: %s of %d, %v", ids(ms), total, err)
	}
	if ms, total, err := c.Members(testCtx(t), "empty", 10); err != nil || total != 0 || len(ms) != 0 {
		t.Fatalf("a room without members: %s of %d, %v", ids(ms), total, err)
	}
	// Joins s0 s1 s2 s1, leave s0.
	waitFor(t, func() string { return fmt.Sprintf("%d events", c.Stats().Events) }, func() bool { return c.Stats().Events == 5 })
}

// A node's members outlive the TTL while it runs (its heartbeat), and
// leave once it is closed and the TTL passed.
func TestPresenceExpiresWithItsNode(t *testing.T) {
	srv := redistest.Start(t)
	cfg := redisengine.Config{PresenceTTL: heartbeatTTL}
	live, dead, viewer := newEngine(t, cfg, srv), newEngine(t, cfg, srv), newEngine(t, cfg, srv)
	added := time.Now()
	if err := live.AddMember(testCtx(t), "r", "live", nil); err != nil {
		t.Fatal(err)
	}
	if err := dead.AddMember(testCtx(t), "r", "dead", nil); err != nil {
		t.Fatal(err)
	}
	dead.Close()
	var listed string
	waitFor(t, func() string { return "members " + listed }, func() bool {
		ms, _, err := viewer.Members(testCtx(t), "r", 10)
		if err != nil {
			t.Fatal(err)
		}
		listed = ids(ms)
		if listed != "[live dead]" && listed != "[live]" {
			t.Fatalf("members %s", listed)
		}
		// Listed two TTLs after it was added: by the heartbeat alone.
		return listed == "[live]" && time.Since(added) > 2*cfg.PresenceTTL
	})
}

// A node that tracks a room hears the leave of a member whose node died,
// within a few presence TTLs, with no join or listing of the room to
// notice it.
func TestADeadNodesMembersLeaveTrackedRooms(t *testing.T) {
	srv := redistest.Start(t)
	ttl := 300 * time.Millisecond
	sink := newSink()
	viewer := newEngine(t, redisengine.Config{PresenceTTL: ttl, Sink: sink}, srv)
	if _, _, err := viewer.Track(testCtx(t), "r", nil, 10); err != nil {
		t.Fatal(err)
	}
	dead := newEngine(t, redisengine.Config{PresenceTTL: ttl}, srv)
	// Before the call: the member's expiry is counted from when AddMember
	// began, which on a loaded machine can be well before it returns.
	added := time.Now()
	if err := dead.AddMember(testCtx(t), "r", "dead", nil); err != nil {
		t.Fatal(err)
	}
	dead.Close()
	leaves := func() int {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		n := 0
		for _, ev := range sink.presence["r"] {
			if ev.Leave {
				n++
			}
		}
		return n
	}
	waitFor(t, func() string { return "a leave event for the dead node's member" }, func() bool { return leaves() == 1 })
	// Expiries are whole milliseconds: one less than the TTL is on time.
	if waited := time.Since(added); waited < ttl-time.Millisecond {
		t.Errorf("the member left %v after it was added, before the TTL of %v", waited, ttl)
	}
}
