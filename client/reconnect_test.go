package client_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/faultproxy"
	"github.com/roomcast/roomcast/server"
)

// fastBackoff keeps tests that reconnect quick.
var fastBackoff = client.WithReconnectBackoff(client.Backoff{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond})

// Connections cut at random while another client publishes: the
// application still sees every message exactly once, in order, and no gap,
// since the server retains everything the subscriber missed.
func TestExactlyOnceAcrossRandomCuts(t *testing.T) {
	const n = 3000
	_, addr := start(t, server.WithBrokerOptions(broker.WithBacklog(4*n, 256<<20), broker.WithHistory(4*n, time.Hour)))
	p := faultproxy.Start(t, addr)
	ctx := testCtx(t)
	sub := subscribe(t, ctx, dial(t, p.Addr(), fastBackoff), "a", "b")
	pub := dial(t, addr)
	// Keeps the rooms while the subscriber is cut off: the server frees a
	// room with no subscriber and nothing retained, and one made again has
	// a new epoch, which would be a gap.
	subscribe(t, ctx, pub, "a", "b")

	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	published := make(chan map[string]uint64, 1)
	failed := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(seed, seed))
		last := map[string]uint64{}
		for range n {
			room := "a"
			if rng.IntN(3) == 0 {
				room = "b"
			}
			off, err := pub.PublishText(ctx, room, room)
			if err != nil {
				failed <- err
				return
			}
			last[room] = off
			if rng.IntN(200) == 0 {
				p.Sever()
			}
		}
		published <- last
	}()

	next := map[string]uint64{"a": 1, "b": 1}
	var got, reconnects int
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
			m := ev.Message
			if m.GetOffset() != next[m.GetRoom()] || m.GetText() != m.GetRoom() {
				t.Fatalf("got %s, want offset %d", describe(ev), next[m.GetRoom()])
			}
			next[m.GetRoom()]++
			got++
		case ev.Gap != nil:
			t.Fatalf("after %d messages: %s", got, describe(ev))
		case ev.Reconnected != nil:
			reconnects++
			for _, r := range ev.Reconnected.Rooms {
				if !r.Recovered || r.From.Offset != next[r.Room]-1 || r.From != r.Resumed {
					t.Fatalf("rejoin %+v, when the next offset of %s is %d", r, r.Room, next[r.Room])
				}
			}
		}
	}
	last := <-published
	if next["a"]-1 != last["a"] || next["b"]-1 != last["b"] {
		t.Errorf("delivered up to %v, published up to %v", next, last)
	}
	if reconnects == 0 {
		t.Errorf("no reconnect; the proxy accepted %d connections", p.Accepted())
	}
	t.Logf("%d reconnects, %d connections", reconnects, p.Accepted())
}

// A server restarted on the same address has lost its history: the
// subscription reconnects by itself and reports the gap, with the new
// epoch, then goes on.
func TestServerRestartReportsGap(t *testing.T) {
	srv, addr := servertest.StartAt(t, "127.0.0.1:0")
	ctx := testCtx(t)
	c := dial(t, addr, fastBackoff)
	sub := subscribe(t, ctx, c, "news", "sport")
	for i := range 3 {
		publishText(t, ctx, c, "news", fmt.Sprint("old ", i))
	}
	for want := uint64(1); want <= 3; want++ {
		if m := next(t, ctx, sub); m.GetOffset() != want {
			t.Fatalf("got offset %d, want %d", m.GetOffset(), want)
		}
	}
	oldSession := sub.SessionID()
	old, err := c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldJoin, err := old.Join(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}

	srv.Close()
	servertest.StartAt(t, addr)

	ev := nextEvent(t, ctx, sub)
	if ev.Disconnected == nil || status.Code(ev.Disconnected.Err) != codes.Unavailable {
		t.Fatalf("got %s, want a disconnection with code Unavailable", describe(ev))
	}
	ev = nextEvent(t, ctx, sub)
	rc := ev.Reconnected
	if rc == nil || rc.Session == oldSession || rc.Session != sub.SessionID() || rc.Attempts < 1 || status.Code(rc.Cause) != codes.Unavailable || len(rc.Rooms) != 2 {
		t.Fatalf("got %s, want a reconnection with a new session and both rooms", describe(ev))
	}
	news, sport := rc.Rooms[0], rc.Rooms[1]
	if news.Room != "news" || news.Recovered || news.From != (client.Position{Offset: 3, Epoch: oldJoin.Epoch}) || news.Resumed.Offset != 0 || news.Resumed.Epoch == oldJoin.Epoch {
		t.Errorf("news rejoined as %+v; old epoch %s", news, oldJoin.Epoch)
	}
	if sport.Room != "sport" || sport.Recovered || sport.From.Offset != 0 {
		t.Errorf("sport rejoined as %+v", sport)
	}
	gaps := map[string]*client.Gap{}
	for range 2 {
		ev := nextEvent(t, ctx, sub)
		if ev.Gap == nil {
			t.Fatalf("got %s, want the gaps", describe(ev))
		}
		gaps[ev.Gap.Room] = ev.Gap
	}
	if g := gaps["news"]; g == nil || g.LastDelivered != news.From || g.Resumed != news.Resumed {
		t.Errorf("news gap %+v, want from %+v to %+v", g, news.From, news.Resumed)
	}

	// The new epoch is the new server's.
	other := subscribe(t, ctx, c)
	now, err := other.Join(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	if now.Epoch != news.Resumed.Epoch {
		t.Errorf("gap resumed in epoch %s; the room's is %s", news.Resumed.Epoch, now.Epoch)
	}
	publishText(t, ctx, c, "news", "new")
	if m := next(t, ctx, sub); m.GetOffset() != 1 || m.GetText() != "new" {
		t.Errorf("after the gap: %v", m)
	}
	// A subscription in no room reconnects too.
	if ev := nextEvent(t, ctx, old); ev.Disconnected == nil {
		t.Errorf("empty subscription: got %s", describe(ev))
	}
	old.Close()
}

// Rooms joined and left while the subscription is disconnected are what
// the next stream joins; a join waiting for the stream returns once it is
// done.
func TestJoinAndLeaveWhileDisconnected(t *testing.T) {
	_, addr := start(t)
	p := faultproxy.Start(t, addr)
	ctx := testCtx(t)
	c := dial(t, p.Addr(), fastBackoff)
	pub := dial(t, addr)
	sub := subscribe(t, ctx, c, "a", "b")
	subscribe(t, ctx, pub, "a", "b", "c") // keeps the rooms and their offsets

	p.Refuse()
	p.Sever()
	if ev := nextEvent(t, ctx, sub); ev.Disconnected == nil {
		t.Fatalf("got %s, want a disconnection", describe(ev))
	}
	joined := make(chan error, 1)
	go func() {
		res, err := sub.Join(ctx, "c")
		if err == nil && (res.Room != "c" || res.Offset != 1) {
			err = fmt.Errorf("join result %+v, want offset 1", res)
		}
		joined <- err
	}()
	if err := sub.Leave(ctx, "a"); err != nil {
		t.Errorf("Leave while disconnected: %v", err)
	}
	if err := sub.Leave(ctx, "a"); !errors.Is(err, client.ErrNotJoined) {
		t.Errorf("second Leave: got %v, want ErrNotJoined", err)
	}
	if _, err := sub.Join(ctx, "b"); !errors.Is(err, client.ErrAlreadyJoined) {
		t.Errorf("Join of a room it is in: got %v, want ErrAlreadyJoined", err)
	}
	publishText(t, ctx, pub, "a", "a1")
	publishText(t, ctx, pub, "b", "b1")
	publishText(t, ctx, pub, "c", "c1") // before the join: not delivered
	p.Resume("")

	if err := <-joined; err != nil {
		t.Fatalf("Join while disconnected: %v", err)
	}
	ev := nextEvent(t, ctx, sub)
	if rc := ev.Reconnected; rc == nil || len(rc.Rooms) != 1 || rc.Rooms[0].Room != "b" || !rc.Rooms[0].Recovered {
		t.Fatalf("got %s, want a reconnection that recovered b alone", describe(ev))
	}
	if m := next(t, ctx, sub); m.GetRoom() != "b" || m.GetText() != "b1" {
		t.Errorf("got %v, want b1", m)
	}
	publishText(t, ctx, pub, "a", "a2")
	publishText(t, ctx, pub, "c", "c2")
	if m := next(t, ctx, sub); m.GetRoom() != "c" || m.GetText() != "c2" {
		t.Errorf("got %v, want c2", m)
	}
	if rooms := sub.Rooms(); fmt.Sprint(rooms) != "[b c]" {
		t.Errorf("Rooms() = %q", rooms)
	}
}

func TestJoinResumeAfter(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	keep := subscribe(t, ctx, c, "r")
	for i := range 5 {
		publishText(t, ctx, c, "r", fmt.Sprint(i+1))
	}
	_ = keep // keeps the room and its history
	sub := subscribe(t, ctx, c)
	res, err := sub.Join(ctx, "r", client.ResumeAfter(client.Position{Offset: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Recovered || res.Offset != 5 || res.Epoch == "" {
		t.Errorf("Join = %+v, want recovered at offset 5", res)
	}
	for want := uint64(3); want <= 5; want++ {
		if m := next(t, ctx, sub); m.GetOffset() != want {
			t.Fatalf("got offset %d, want %d", m.GetOffset(), want)
		}
	}

	// Another epoch: nothing is replayed, and the result says so.
	gap := subscribe(t, ctx, c)
	res, err = gap.Join(ctx, "r", client.ResumeAfter(client.Position{Offset: 2, Epoch: "not-the-epoch"}))
	if err != nil || res.Recovered || res.Offset != 5 {
		t.Errorf("Join in another epoch = %+v, %v; want not recovered, at offset 5", res, err)
	}
	publishText(t, ctx, c, "r", "6")
	if m := next(t, ctx, gap); m.GetOffset() != 6 {
		t.Errorf("got %v", m)
	}
	if _, err := gap.Join(ctx, "x", client.ResumeAfter(client.Position{Offset: 9})); status.Code(err) != codes.OutOfRange {
		t.Errorf("Join past the newest offset: got %v, want code OutOfRange", err)
	}
}

// Cancelling the context of a subscription that is reconnecting ends it,
// and its goroutines (goleak checks).
func TestCancelWhileReconnecting(t *testing.T) {
	_, addr := start(t)
	p := faultproxy.Start(t, addr)
	c := dial(t, p.Addr(), fastBackoff)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	sub := subscribe(t, ctx, c, "r")
	p.Refuse()
	p.Sever()
	if ev := nextEvent(t, testCtx(t), sub); ev.Disconnected == nil {
		t.Fatalf("got %s", describe(ev))
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := sub.Join(context.Background(), "other")
		waiting <- err
	}()
	cancel()
	if _, err := sub.Next(testCtx(t)); !errors.Is(err, context.Canceled) {
		t.Errorf("Next after cancel: %v", err)
	}
	if err := <-waiting; !errors.Is(err, context.Canceled) {
		t.Errorf("Join waiting for a stream: %v", err)
	}
}
