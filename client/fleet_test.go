package client_test

import (
	"fmt"
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
// client rejoins every room. The fleet's first joins take most of the
// credential's burst; its rejoins, more than what is left, are served at
// the credential's rate, a client refused part way through trying again
// after its backoff (issue #13: the defaults were lowered for attack (e)).
func TestAFleetOfOneKeyRejoinsAtTheDefaultCommandRates(t *testing.T) {
	const clients, rooms = 6, server.DefaultMaxRoomsPerSession
	if clients*rooms > server.DefaultCredentialCommandBurst {
		t.Fatalf("%d first joins past the credential's burst of %d", clients*rooms, server.DefaultCredentialCommandBurst)
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
	for i := range subs {
		subs[i] = subscribe(t, ctx, dial(t, p.Addr(), client.WithBearerToken(tok)), names...)
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
					if len(rc.Rooms) != rooms {
						t.Errorf("client %d rejoined %d rooms, want %d", i, len(rc.Rooms), rooms)
					}
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d clients rejoined %d rooms each in %v", clients, rooms, time.Since(start).Round(time.Millisecond))
}
