package client_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/testsupport/faultproxy"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// A fleet of clients sharing a key, each in the most rooms a stream may be
// in, subscribes and then reconnects at once (its connections cut) under
// the server's default command rates and its own default backoff: every
// client rejoins every room, once. The fleet's first joins take most of
// the credential's burst; its rejoins, more than what is left, are served
// at the credential's rate, the refused ones sent again on the same stream
// after the delay their refusal advises (issue #13: the defaults were
// lowered for attack (e)). ROOMCAST_FLEET_CLIENTS sets the fleet's size,
// for measuring a larger one: its first joins are then spread out at the
// rate, and the fleet is cut off once the burst is whole again.
func TestAFleetOfOneKeyRejoinsAtTheDefaultCommandRates(t *testing.T) {
	const rooms = server.DefaultMaxRoomsPerSession
	clients := 6
	if v := os.Getenv("ROOMCAST_FLEET_CLIENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("ROOMCAST_FLEET_CLIENTS=%q: want a positive number", v)
		}
		clients = n
	}
	addr := testjwt.StartServer(t)
	p := faultproxy.Start(t, addr)
	ctx := testCtx(t)
	tok := testjwt.Token(t, "fleet", time.Now().Add(time.Hour), testjwt.Grants(t, "", "fleet.>", ""))
	names := make([]string, rooms)
	for i := range names {
		names[i] = fmt.Sprintf("fleet.%d", i)
	}
	subs := make([]*client.Subscription, clients)
	began := time.Now()
	for i := range subs {
		// Past the burst, a client's first joins wait for the tokens the
		// rate has made since the fleet began, and a tenth more.
		over := (i+1)*rooms - server.DefaultCredentialCommandBurst
		waitFor(t, ctx, time.Until(began.Add(refill(over))))
		subs[i] = subscribe(t, ctx, dial(t, p.Addr(), client.WithBearerToken(tok)), names...)
	}
	if clients*rooms > server.DefaultCredentialCommandBurst {
		waitFor(t, ctx, refill(server.DefaultCredentialCommandBurst)) // the burst made whole
	}
	start := time.Now()
	p.Sever()
	var wg sync.WaitGroup
	for i, sub := range subs {
		wg.Go(func() {
			for {
				ev, err := sub.Next(ctx)
				if err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
				if rc := ev.Reconnected; rc != nil {
					if len(rc.Rooms) != rooms || rc.Attempts != 1 {
						t.Errorf("client %d rejoined %d rooms after %d attempts, want %d after 1", i, len(rc.Rooms), rc.Attempts, rooms)
					}
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d clients rejoined %d rooms each in %v", clients, rooms, time.Since(start).Round(time.Millisecond))
}

// refill is how long the default credential command rate takes to allow n
// more commands, and a tenth more; 0 for n <= 0.
func refill(n int) time.Duration {
	return time.Duration(max(n, 0)) * time.Second / server.DefaultCredentialCommandRate * 11 / 10
}

// waitFor lets d pass, for a rate to make tokens: a wait for time itself,
// not for a condition that could be polled.
func waitFor(t *testing.T, ctx context.Context, d time.Duration) {
	t.Helper()
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
}
