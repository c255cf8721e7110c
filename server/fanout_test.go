package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// Hundreds of subscribers over a few connections each receive every
// message, in order, while the broker encodes each message exactly once.
func TestEachMessageIsEncodedOnceWhateverTheRoomSize(t *testing.T) {
	const subscribers, conns, messages = 300, 6, 50
	srv, addr := start(t)
	ctx := testCtx(t)
	clients := make([]roomcastv1.BrokerServiceClient, conns)
	for i := range clients {
		clients[i] = dial(t, addr)
	}
	subs := make([]*subscriber, subscribers)
	for i := range subs {
		subs[i] = subscribe(t, ctx, clients[i%conns], "big.room")
	}
	for i := 1; i <= messages; i++ {
		if off := publishText(t, ctx, clients[0], "big.room", fmt.Sprint("m", i)); off != uint64(i) {
			t.Fatalf("offset %d for message %d", off, i)
		}
	}
	for si, s := range subs {
		for i := 1; i <= messages; i++ {
			if m := s.next(); m.GetOffset() != uint64(i) || m.GetText() != fmt.Sprint("m", i) {
				t.Fatalf("subscriber %d: got offset %d %q, want %d", si, m.GetOffset(), m.GetText(), i)
			}
		}
	}
	st := srv.Broker().Stats()
	if st.Encoded != messages {
		t.Errorf("%d encodes for %d messages to %d subscribers, want one each", st.Encoded, messages, subscribers)
	}
	if st.Delivered != messages*subscribers {
		t.Errorf("delivered %d, want %d", st.Delivered, messages*subscribers)
	}
}

func TestExcludeSessionSkipsOnlyThatSession(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	sender := subscribe(t, ctx, c, "r")
	other := subscribe(t, ctx, c, "r")
	if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Text{Text: "not to sender"}, ExcludeSession: sender.session}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Text{Text: "to all"}}); err != nil {
		t.Fatal(err)
	}
	if m := other.next(); m.GetText() != "not to sender" {
		t.Errorf("other got %q first", m.GetText())
	}
	if m := other.next(); m.GetText() != "to all" {
		t.Errorf("other got %q second", m.GetText())
	}
	if m := sender.next(); m.GetText() != "to all" || m.GetOffset() != 2 {
		t.Errorf("sender got %q at %d, want only the second message", m.GetText(), m.GetOffset())
	}
}

// Concurrent publishers get distinct, consecutive offsets, and a subscriber
// in several rooms sees each room in offset order, with no gap.
func TestConcurrentPublishersGetConsecutiveOffsets(t *testing.T) {
	const publishers, each = 8, 100
	rooms := []string{"a", "b.c"}
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, rooms...)

	var mu sync.Mutex
	seen := map[string]map[uint64]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Go(func() {
			room := rooms[p%len(rooms)]
			for i := range each {
				resp, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: fmt.Sprint(p, "-", i)}})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if seen[room] == nil {
					seen[room] = map[uint64]bool{}
				}
				if seen[room][resp.GetOffset()] {
					errs <- fmt.Errorf("offset %d of %s given twice", resp.GetOffset(), room)
				}
				seen[room][resp.GetOffset()] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	perRoom := publishers / len(rooms) * each
	last := map[string]uint64{}
	for range publishers * each {
		m := sub.next()
		if m.GetOffset() != last[m.GetRoom()]+1 {
			t.Fatalf("room %s: offset %d after %d", m.GetRoom(), m.GetOffset(), last[m.GetRoom()])
		}
		last[m.GetRoom()] = m.GetOffset()
	}
	for _, r := range rooms {
		if last[r] != uint64(perRoom) || len(seen[r]) != perRoom {
			t.Errorf("room %s: last offset %d, %d distinct offsets; want %d", r, last[r], len(seen[r]), perRoom)
		}
	}
}

// A subscriber that stops reading is cut off with RESOURCE_EXHAUSTED once it
// is further behind than the backlog; it first receives, in order and without
// a gap, everything up to the offset the status names.
func TestSlowConsumerIsCutOffWithTheLastOffsetSent(t *testing.T) {
	const backlog = 32
	srv, addr := start(t, server.WithBrokerOptions(broker.WithBacklog(backlog, 64<<10)), server.WithMaxMessageBytes(4<<10), server.WithWriteTimeout(200*time.Millisecond))
	ctx := testCtx(t)
	c := dial(t, addr)
	slow := subscribe(t, ctx, c, "firehose", "quiet")
	fast := subscribe(t, ctx, dial(t, addr), "firehose")

	// Publish until the server has given up on the slow subscriber, which
	// reads nothing meanwhile; flow control then stalls its stream.
	payload := strings.Repeat("x", 2<<10)
	var published uint64
	for srv.Broker().Stats().Lagged == 0 {
		published = publishText(t, ctx, c, "firehose", payload)
		if m := fast.next(); m.GetOffset() != published {
			t.Fatalf("fast subscriber got %d, want %d", m.GetOffset(), published)
		}
		if published > 100_000 {
			t.Fatal("slow subscriber never cut off")
		}
	}

	var got uint64
	for {
		m, err := slow.recv()
		if err != nil {
			st := status.Convert(err)
			if st.Code() != codes.ResourceExhausted {
				t.Fatalf("stream ended with %v, want RESOURCE_EXHAUSTED", err)
			}
			for _, want := range []string{fmt.Sprintf("firehose=%d", got), "quiet=0", "slow consumer"} {
				if !strings.Contains(st.Message(), want) {
					t.Errorf("status %q does not say %q", st.Message(), want)
				}
			}
			break
		}
		if m.GetOffset() != got+1 {
			t.Fatalf("slow subscriber got %d after %d", m.GetOffset(), got)
		}
		got = m.GetOffset()
	}
	if got == 0 || got >= published {
		t.Errorf("slow subscriber received up to %d of %d", got, published)
	}
	// The others are unaffected.
	next := publishText(t, ctx, c, "firehose", "after")
	if m := fast.next(); m.GetOffset() != next {
		t.Errorf("fast subscriber got %d, want %d", m.GetOffset(), next)
	}
}

func TestShutdownEndsStreamsWithUnavailable(t *testing.T) {
	srv, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "r")
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	st := sub.expectEnd(codes.Unavailable)
	if !strings.Contains(st.Message(), "shutting down") {
		t.Errorf("status message %q", st.Message())
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r"}); status.Code(err) != codes.Unavailable {
		t.Errorf("publish after shutdown: %v, want UNAVAILABLE", err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}
