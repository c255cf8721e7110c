package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/testsupport/faultproxy"
	"github.com/roomcast/roomcast/server"
)

// A subscription whose rejoins are refused part way by its credential's
// command rate sends the refused ones again on the same stream after the
// delay each refusal advises, rather than reconnecting and rejoining every
// room: it reconnects once, and every message published before, during
// and after the rejoin is delivered once, in order, with no gap (issue #13
// follow-up). Reconnected lists the rooms in the order they were joined.
func TestRejoinsPastTheCommandRateAreSentAgainOnTheSameStream(t *testing.T) {
	const rooms, perPhase = 40, 3
	// The first joins take the whole burst, and the rejoins come faster
	// than the rate makes tokens: most are refused at first.
	_, addr := start(t, server.WithCommandRate(0, 0), server.WithCredentialCommandRate(50, rooms),
		server.WithBrokerOptions(broker.WithHistory(100, time.Hour)))
	p := faultproxy.Start(t, addr)
	ctx := testCtx(t)
	names := make([]string, rooms)
	for i := range names {
		names[i] = fmt.Sprint("r", i)
	}
	sub := subscribe(t, ctx, dial(t, p.Addr(), fastBackoff), names...)
	pub := dial(t, addr)
	publishAll := func(phase int) {
		for _, room := range names {
			for i := range perPhase {
				publishText(t, ctx, pub, room, fmt.Sprint(phase, i))
			}
		}
	}
	next := make(map[string]uint64, rooms)
	for _, room := range names {
		next[room] = 1
	}
	// receive reads until every room has had want messages, checking that
	// each comes once, in order; it returns the Reconnected events seen.
	receive := func(ctx context.Context, want uint64) (reconnects []*client.Reconnected) {
		t.Helper()
		for got := 0; got < rooms; {
			ev, err := sub.Next(ctx)
			if err != nil {
				t.Fatalf("waiting for message %d of every room (reconnected %d times): %v", want, len(reconnects), err)
			}
			switch {
			case ev.Message != nil:
				m := ev.Message
				if m.GetOffset() != next[m.GetRoom()] {
					t.Fatalf("got %s, want offset %d", describe(ev), next[m.GetRoom()])
				}
				if next[m.GetRoom()]++; next[m.GetRoom()] == want+1 {
					got++
				}
			case ev.Reconnected != nil:
				reconnects = append(reconnects, ev.Reconnected)
			case ev.Disconnected != nil:
			default:
				t.Fatalf("unexpected %s", describe(ev))
			}
		}
		return reconnects
	}
	publishAll(0)
	receive(ctx, perPhase)

	p.Sever()
	publishAll(1) // while the subscription reconnects and rejoins
	// Today's rate lets the rooms be rejoined in a second; a client that
	// reconnects at each refusal is refused again on each new stream.
	rejoinCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	reconnects := receive(rejoinCtx, 2*perPhase)
	publishAll(2)
	reconnects = append(reconnects, receive(ctx, 3*perPhase)...)
	if len(reconnects) != 1 {
		t.Fatalf("reconnected %d times, want once", len(reconnects))
	}
	if rc := reconnects[0]; rc.Attempts != 1 || len(rc.Rooms) != rooms {
		t.Errorf("reconnected after %d attempts with %d rooms, want 1 attempt and %d rooms", rc.Attempts, len(rc.Rooms), rooms)
	}
	for i, r := range reconnects[0].Rooms {
		if !r.Recovered {
			t.Errorf("room %s not recovered: %+v", r.Room, r)
		}
		if i < rooms && r.Room != names[i] { // in the order joined, resent or not
			t.Errorf("Reconnected.Rooms[%d] is %s, want %s", i, r.Room, names[i])
		}
	}
}

// A subscription closed, or whose stream ends, while a refused rejoin
// waits to be sent again stops its timer: each returns well before the
// delay the refusal advised, and no goroutine is left (goleak, in
// TestMain).
func TestRejoinsWaitingToBeSentAgainEndWithTheStream(t *testing.T) {
	for _, end := range []string{"close", "cut"} {
		t.Run(end, func(t *testing.T) {
			ctx := testCtx(t)
			sub, p, _ := slowRejoin(t, ctx) // advised about 20 s
			if end == "cut" {
				session := sub.SessionID()
				p.Sever()
				until(t, ctx, 5*time.Second, "the stream's end waits for the rejoin's delay",
					func() bool { return sub.SessionID() != session })
			}
			closed := make(chan error, 1)
			go func() { closed <- sub.Close() }()
			deadline := time.NewTimer(5 * time.Second)
			defer deadline.Stop()
			select {
			case err := <-closed:
				if err != nil {
					t.Fatal(err)
				}
			case <-deadline.C:
				t.Fatal("Close waits for the rejoin's delay")
			}
		})
	}
}
