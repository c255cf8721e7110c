package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/internal/redistest"
	"github.com/roomcast/roomcast/internal/testsupport/faultproxy"
	"github.com/roomcast/roomcast/server"
)

// The client's reconnects land on another node of a cluster each time: the
// subscription resumes there from its last position, with no gap and
// nothing twice.
func TestReconnectsToAnotherNodeLoseNothing(t *testing.T) {
	const n = 600
	redis := redistest.Start(t)
	cfg := redisengine.Config{Addrs: []string{redis.Addr}, Prefix: "clientcluster"}
	var addrs []string
	for range 2 {
		engine := broker.WithEngine(redisengine.Factory(context.Background(), cfg))
		_, addr := start(t, server.WithBrokerOptions(broker.WithHistory(4*n, time.Hour), broker.WithBacklog(4*n, 64<<20), engine))
		addrs = append(addrs, addr)
	}
	p := faultproxy.Start(t, addrs[0])
	ctx := testCtx(t)
	sub := subscribe(t, ctx, dial(t, p.Addr(), fastBackoff), "a")
	pub := dial(t, addrs[1])

	failed := make(chan error, 1)
	go func() {
		for i := 1; i <= n; i++ {
			if _, err := pub.PublishText(ctx, "a", fmt.Sprint(i)); err != nil {
				failed <- err
				return
			}
			if i%100 == 0 { // move the subscriber to the other node
				p.Hold()
				p.Sever()
				p.Resume(addrs[(i/100)%2])
			}
		}
	}()
	var got, reconnects uint64
	for got < n {
		ev, err := sub.Next(ctx)
		if err != nil {
			select {
			case err := <-failed:
				t.Fatalf("publish: %v", err)
			default:
			}
			t.Fatalf("after %d messages: %v", got, err)
		}
		switch {
		case ev.Message != nil:
			if ev.Message.GetOffset() != got+1 || ev.Message.GetText() != fmt.Sprint(got+1) {
				t.Fatalf("got %s, want offset %d", describe(ev), got+1)
			}
			got++
		case ev.Gap != nil:
			t.Fatalf("after %d messages: %s", got, describe(ev))
		case ev.Reconnected != nil:
			reconnects++
			for _, r := range ev.Reconnected.Rooms {
				if !r.Recovered || r.From.Offset != got {
					t.Fatalf("rejoin %+v after %d messages", r, got)
				}
			}
		}
	}
	if reconnects == 0 {
		t.Errorf("no reconnect; the proxy accepted %d connections", p.Accepted())
	}
	t.Logf("%d reconnects over 2 nodes, %d connections", reconnects, p.Accepted())
}
