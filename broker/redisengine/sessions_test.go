package redisengine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/internal/redistest"
)

// A session registered by one node is found, with its owner, by another,
// for as long as its node lives (the heartbeat keeps it past its TTL), and
// no longer once it ends: at once, not after the TTL.
func TestSessionsAreFoundByEveryNode(t *testing.T) {
	srv := redistest.Start(t)
	const ttl = heartbeatTTL
	a := newEngine(t, redisengine.Config{PresenceTTL: ttl}, srv)
	b := newEngine(t, redisengine.Config{PresenceTTL: ttl}, srv)
	if err := a.RegisterSession(testCtx(t), "S1", "jwt:alice"); err != nil {
		t.Fatal(err)
	}
	owner := func() (string, bool) {
		t.Helper()
		o, found, err := b.SessionOwner(testCtx(t), "S1")
		if err != nil {
			t.Fatal(err)
		}
		return o, found
	}
	if o, found := owner(); !found || o != "jwt:alice" {
		t.Fatalf("the other node finds %q, %v; want jwt:alice", o, found)
	}
	if _, found, err := b.SessionOwner(testCtx(t), "S2"); found || err != nil {
		t.Fatalf("an unknown session: found %v, %v", found, err)
	}
	// Alive for two TTLs, by the heartbeat alone.
	until := time.Now().Add(2 * ttl)
	waitFor(t, func() string { return "the session expired while its node lived" }, func() bool {
		if _, found := owner(); !found {
			t.Fatal("the session expired while its node lived")
		}
		return time.Now().After(until)
	})
	ended := time.Now()
	a.EndSession("S1")
	waitFor(t, func() string { return "the ended session is still found" }, func() bool { _, found := owner(); return !found })
	if took := time.Since(ended); took >= ttl {
		t.Errorf("the ended session was found for %v, as long as its TTL: it was not deleted", took)
	}
}

// A node that dies (its engine stops without ending its sessions) loses
// its sessions within PresenceTTL.
func TestSessionsOfADeadNodeExpire(t *testing.T) {
	srv := redistest.Start(t)
	const ttl = 300 * time.Millisecond
	a, err := redisengine.New(testCtx(t), redisengine.Config{Addrs: []string{srv.Addr}, PresenceTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	b := newEngine(t, redisengine.Config{PresenceTTL: ttl}, srv)
	if err := a.RegisterSession(testCtx(t), "S1", "jwt:alice"); err != nil {
		t.Fatal(err)
	}
	a.Close()
	died := time.Now()
	// When the last lookup that found the session began: Redis answered it
	// later, while the session lived. Timed so, the check does not depend on
	// how late a loaded machine polls.
	var found bool
	var lastFound time.Time
	waitFor(t, func() string { return fmt.Sprint("still found: ", found) }, func() bool {
		began := time.Now()
		_, found, err = b.SessionOwner(testCtx(t), "S1")
		if err == nil && found {
			lastFound = began
		}
		return err == nil && !found
	})
	// The last heartbeat was before Close returned; expiries are whole
	// milliseconds.
	if after := lastFound.Sub(died); !lastFound.IsZero() && after > ttl+time.Millisecond {
		t.Errorf("the dead node's session was found %v after it died, past its TTL of %v", after, ttl)
	}
}
