package client_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/testsupport/faultproxy"
)

// Goroutines a Subscription runs: grpc-go's one per stream, which watches
// its context, and of the client package's, one while nobody calls Next
// (the receiver reads ahead into the queue), also after a reconnect, and
// none while the application reads the stream by calling Next with the
// subscription's context. Every goroutine is a stack the collector scans
// and the scheduler keeps; a process with thousands of subscriptions pays
// for each. Close ends them all (goleak checks that at the end of the
// package's tests).
func TestGoroutinesPerIdleSubscription(t *testing.T) {
	const subs = 20
	_, addr := start(t)
	p := faultproxy.Start(t, addr)
	ctx := testCtx(t)
	c := dial(t, p.Addr(), fastBackoff)
	base := subscriberGoroutines()

	all := make([]*client.Subscription, 0, subs)
	for i := range subs {
		all = append(all, subscribe(t, ctx, c, fmt.Sprintf("room-%d", i), "shared"))
	}
	check := func(when string, each int) {
		t.Helper()
		// Polled: a goroutine that is ending (the sender of a reconnect's
		// joins, grpc-go's watcher of a stream cancelled, a receiver
		// parking) still counts until it has returned.
		var ours, streams int
		for deadline := time.Now().Add(5 * time.Second); ; {
			got := subscriberGoroutines()
			ours, streams = got.client-base.client, got.streams-base.streams
			if (ours <= each*subs && streams == subs) || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond) // runtime.Stack stops the world: not in a tight loop
		}
		t.Logf("%s: %d subscriptions run %d goroutines of the client package and %d of grpc-go's streams", when, subs, ours, streams)
		if ours > each*subs {
			t.Errorf("%s: %d goroutines of the client package for %d subscriptions, want at most %d each", when, ours, subs, each)
		}
		if streams != subs {
			t.Errorf("%s: %d goroutines watching streams for %d subscriptions, want 1 each", when, streams, subs)
		}
	}
	// Nobody calls Next: each subscription's receiver reads ahead.
	check("joined", 1)

	p.Sever() // every subscription reconnects and rejoins its rooms
	for _, sub := range all {
		for {
			ev := nextEvent(t, ctx, sub)
			if ev.Reconnected != nil {
				break
			}
			if ev.Disconnected == nil {
				t.Fatalf("got %s, want disconnected then reconnected", describe(ev))
			}
		}
	}
	check("reconnected", 1)

	// Readers calling Next with the subscription's context read the
	// stream themselves: the receivers park.
	const msgs = 3
	var (
		wg  sync.WaitGroup
		got = make([]atomic.Int64, subs)
	)
	for i, sub := range all {
		wg.Go(func() {
			for {
				ev, err := sub.Next(ctx)
				if err != nil {
					return // closed below
				}
				if ev.Message != nil {
					got[i].Add(1)
				}
			}
		})
	}
	pub := dial(t, addr)
	for range msgs {
		publishText(t, ctx, pub, "shared", "m")
	}
	for i := range got {
		for got[i].Load() < msgs {
			if ctx.Err() != nil {
				t.Fatalf("subscription %d got %d of %d messages", i, got[i].Load(), msgs)
			}
			runtime.Gosched()
		}
	}
	check("read by Next", 0)
	for _, sub := range all {
		sub.Close()
	}
	wg.Wait()
}

// goroutineCounts are the goroutines of a process's client side: those the
// client package started, and those grpc-go started to watch a client
// stream's context.
type goroutineCounts struct{ client, streams int }

// subscriberGoroutines counts the goroutines by their creator, so that the
// server's, in the same process, are left out.
func subscriberGoroutines() goroutineCounts {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var c goroutineCounts
	for _, g := range strings.Split(string(buf), "\n\n") {
		i := strings.Index(g, "\ncreated by ")
		if i < 0 {
			continue
		}
		creator := g[i+len("\ncreated by "):]
		switch {
		case strings.HasPrefix(creator, "github.com/roomcast/roomcast/client."):
			c.client++
		case strings.HasPrefix(creator, "google.golang.org/grpc.newClientStreamWithParams"):
			c.streams++
		}
	}
	return c
}

// A consumer catching up on a full queue starts the parked receiver again
// once the queue is down to half, not at each Next: on the first version
// of the parking receiver, a drain of a few thousand messages started one
// for about every other response.
func TestCatchingUpStartsFewReceivers(t *testing.T) {
	const n = 2000
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "r")
	p, err := c.NewPublisher(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := publishAll(ctx, p, "r", []byte("x"), n); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for client.Queued(sub) < 256 { // the receiver parks for room
		if time.Now().After(deadline) {
			t.Fatalf("%d events queued after 10s, want a full queue", client.Queued(sub))
		}
		time.Sleep(time.Millisecond) // polling the queue, with a deadline
	}
	reader, cancel := context.WithCancel(ctx) // not the subscription's: the receiver reads for Next
	defer cancel()
	before := client.ReceiverStarts(sub)
	for got := 0; got < n; {
		ev, err := sub.Next(reader)
		if err != nil {
			t.Fatalf("after %d messages: %v", got, err)
		}
		if ev.Message != nil {
			got++
		}
		time.Sleep(50 * time.Microsecond) // a consumer slower than the receiver, which then parks
	}
	if starts := client.ReceiverStarts(sub) - before; starts > n/128+8 {
		t.Errorf("draining %d messages started the receiver %d times, want at most %d", n, starts, n/128+8)
	}
}
