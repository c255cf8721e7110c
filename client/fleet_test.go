package client_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
// rate, and the fleet is cut off once the burst is whole again. Otherwise
// the setup's joins leave too little of the burst spent for a rejoin to be
// refused, and another client of the key spends it first.
func TestAFleetOfOneKeyRejoinsAtTheDefaultCommandRates(t *testing.T) {
	const rooms = server.DefaultMaxRoomsPerSession
	clients := 6
	v := os.Getenv("ROOMCAST_FLEET_CLIENTS")
	measuring := v != ""
	if measuring {
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
	switch {
	case !measuring:
		drainCommands(t, ctx, p.Addr(), tok)
	case clients*rooms > server.DefaultCredentialCommandBurst:
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
	var resent uint64
	for _, sub := range subs {
		resent += client.RejoinsResent(sub)
	}
	t.Logf("%d clients rejoined %d rooms each in %v, %d rejoins sent again", clients, rooms, time.Since(start).Round(time.Millisecond), resent)
	if resent == 0 {
		t.Error("no rejoin was refused for the rate: the fleet is too small to test the resends")
	}
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

// drainCommands spends the command burst of tok's credential: joins of
// rooms outside its grants, which its rate counts before refusing them,
// from several streams (one stream's own rate refuses past 1,000 in a
// burst), until the credential's rate refuses one.
func drainCommands(t *testing.T, ctx context.Context, addr, tok string) {
	t.Helper()
	c := dial(t, addr, client.WithBearerToken(tok))
	dctx, spent := context.WithCancel(ctx)
	defer spent()
	var wg sync.WaitGroup
	for i := range 3 {
		sub := subscribe(t, ctx, c)
		for j := range 16 {
			wg.Go(func() {
				for n := 0; dctx.Err() == nil; n++ {
					_, err := sub.Join(dctx, fmt.Sprintf("drain.%d.%d.%d", i, j, n))
					if status.Code(err) == codes.ResourceExhausted && strings.Contains(err.Error(), "credential") {
						spent()
					}
				}
			})
		}
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatal("the credential's command rate never refused a join")
	}
}
