package client_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/testsupport/faultproxy"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
)

// A refresh whose token no longer grants a room takes the room out of the
// subscription with a Revoked event, so that a reconnect does not join it
// again (which the server would refuse, ending the subscription).
func TestRefreshRevokesRoomsAndTheyAreNotRejoined(t *testing.T) {
	addr := testjwt.StartServer(t)
	p := faultproxy.Start(t, addr)
	ctx := testCtx(t)
	var calls atomic.Int32
	src := func(context.Context) (string, error) {
		if calls.Add(1) == 1 { // the first stream: short-lived, both rooms
			return testjwt.Token(t, "reader", time.Now().Add(2*time.Second), testjwt.Grants(t, "", "keep,drop", "")), nil
		}
		return testjwt.Token(t, "reader", time.Now().Add(time.Hour), testjwt.Grants(t, "", "keep", "")), nil
	}
	sub := subscribe(t, ctx, dial(t, p.Addr(), client.WithTokenSource(src), fastBackoff), "keep", "drop")

	ev := nextEvent(t, ctx, sub)
	if ev.Revoked == nil || !slices.Equal(ev.Revoked.Rooms, []string{"drop"}) {
		t.Fatalf("got %s, want drop revoked", describe(ev))
	}
	if rooms := sub.Rooms(); !slices.Equal(rooms, []string{"keep"}) {
		t.Errorf("Rooms() = %q after the revocation, want [keep]", rooms)
	}

	p.Sever()
	if ev := nextEvent(t, ctx, sub); ev.Disconnected == nil {
		t.Fatalf("got %s, want a disconnection", describe(ev))
	}
	ev = nextEvent(t, ctx, sub)
	if ev.Reconnected == nil || len(ev.Reconnected.Rooms) != 1 || ev.Reconnected.Rooms[0].Room != "keep" {
		t.Fatalf("got %s, want a reconnection in keep only", describe(ev))
	}
	pub := dial(t, addr, client.WithBearerToken(testjwt.Token(t, "writer", time.Now().Add(time.Hour), testjwt.Grants(t, "keep", "", ""))))
	publishText(t, ctx, pub, "keep", "still here")
	for {
		ev := nextEvent(t, ctx, sub)
		if ev.Gap != nil && ev.Gap.Room == "keep" {
			continue // the room was freed while nobody was in it
		}
		if ev.Message == nil || ev.Message.GetText() != "still here" {
			t.Fatalf("got %s, want the message", describe(ev))
		}
		break
	}
}
