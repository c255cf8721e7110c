package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

func joinReq(id, room string, pos *roomcastv1.Position) *roomcastv1.SubscribeRequest {
	return &roomcastv1.SubscribeRequest{Id: id, Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: room, Position: pos}}}
}

func TestResumeOverTheStream(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	first := subscribe(t, ctx, c)
	rep := first.command(joinReq("j", "r", nil))
	epoch := rep.GetJoin().GetEpoch()
	for i := 1; i <= 5; i++ {
		publishText(t, ctx, c, "r", fmt.Sprint(i))
	}
	second := subscribe(t, ctx, c)
	rep = second.command(joinReq("j", "r", &roomcastv1.Position{Offset: 3, Epoch: epoch}))
	if j := rep.GetJoin(); !j.GetRecovered() || j.GetOffset() != 5 || j.GetEpoch() != epoch {
		t.Fatalf("join reply %v", rep)
	}
	for want := uint64(4); want <= 5; want++ {
		if m := second.next(); m.GetOffset() != want {
			t.Fatalf("replayed %d, want %d", m.GetOffset(), want)
		}
	}
	rep = second.command(joinReq("k", "other", &roomcastv1.Position{Offset: 3, Epoch: "NOTTHEEPOCH"}))
	if j := rep.GetJoin(); j.GetRecovered() || rep.GetError() != nil {
		t.Errorf("join with another epoch: %v", rep)
	}
	rep = second.command(joinReq("l", "third", &roomcastv1.Position{Offset: 3}))
	if rep.GetError().GetCode() != int32(codes.OutOfRange) {
		t.Errorf("join past the newest offset: %v", rep)
	}
}

func TestHistoryAndPresenceRPCs(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	for i := 1; i <= 3; i++ {
		publishText(t, ctx, c, "h", fmt.Sprint(i))
	}
	h, err := c.History(ctx, &roomcastv1.HistoryRequest{Room: "h", After: 1, NewestFirst: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.GetMessages()) != 2 || h.GetMessages()[0].GetText() != "3" || h.GetMessages()[1].GetText() != "2" || h.GetOffset() != 3 || h.GetEpoch() == "" {
		t.Errorf("history %v", h)
	}
	if _, err := c.History(ctx, &roomcastv1.HistoryRequest{Room: "h", Limit: 1001}); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("history with a limit too high: %v", err)
	}

	stream, err := c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	member := &subscriber{t: t, stream: stream}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	rep := member.command(&roomcastv1.SubscribeRequest{Id: "p", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{
		Room: "h", Presence: true, Info: map[string]string{"name": "ann"},
	}}})
	if rep.GetError() != nil {
		t.Fatal(rep.GetError())
	}
	p, err := c.Presence(ctx, &roomcastv1.PresenceRequest{Room: "h"})
	if err != nil || p.GetTotal() != 1 || p.GetMembers()[0].GetInfo()["name"] != "ann" {
		t.Errorf("presence %v, %v", p, err)
	}
	bad := member.command(&roomcastv1.SubscribeRequest{Id: "q", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{
		Room: "i", Presence: true, Info: map[string]string{"big": strings.Repeat("x", 2000)},
	}}})
	if bad.GetError().GetCode() != int32(codes.InvalidArgument) {
		t.Errorf("oversize info: %v", bad)
	}
}

// Publishers publish to several rooms while subscribers disconnect and
// resume at random points, mid-replay included. Every subscriber must end
// up with exactly the published sequence of each of its rooms, from its
// first join on.
func TestRandomDisconnectsNeverLoseOrRepeatAMessage(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			_, addr := start(t, server.WithBrokerOptions(resumeRunLimits...))
			resumeRun(t, seed, []roomcastv1.BrokerServiceClient{dial(t, addr)})
		})
	}
}

// resumeRunLimits keep everything a resumeRun publishes.
var resumeRunLimits = []broker.Option{broker.WithBacklog(4096, 16<<20), broker.WithHistory(4096, time.Hour)}

// resumeRun publishes from several publishers while subscribers drop their
// streams at random and resume, each time on one of nodes, and checks that
// every subscriber got every message after its first join exactly once, in
// order.
func resumeRun(t *testing.T, seed uint64, nodes []roomcastv1.BrokerServiceClient) {
	const publishers, perPublisher, subscribers = 3, 150, 6
	rooms := []string{"r.0", "r.1", "r.2"}
	ctx := testCtx(t)

	var mu sync.Mutex
	published := map[string]map[uint64]string{} // room → offset → text
	for _, r := range rooms {
		published[r] = map[uint64]string{}
	}
	var pubs sync.WaitGroup
	errs := make(chan error, publishers+subscribers)
	for p := range publishers {
		pubs.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(p)))
			c := nodes[p%len(nodes)]
			for i := range perPublisher {
				room, text := rooms[rng.IntN(len(rooms))], fmt.Sprint(p, "/", i)
				resp, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: text}})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				published[room][resp.GetOffset()] = text
				mu.Unlock()
			}
		})
	}
	// Subscribers read heads once final is closed, when publishing is over.
	final := make(chan struct{})
	heads := map[string]uint64{}
	var subs sync.WaitGroup
	results := make([]map[string][]*roomcastv1.Message, subscribers)
	starts := make([]map[string]uint64, subscribers)
	for s := range subscribers {
		subs.Go(func() {
			rng := rand.New(rand.NewPCG(seed, 100+uint64(s)))
			mine := rooms[:1+rng.IntN(len(rooms))]
			results[s], starts[s] = map[string][]*roomcastv1.Message{}, map[string]uint64{}
			if err := resumingSubscriber(ctx, nodes, rng, mine, results[s], starts[s], final, heads); err != nil {
				errs <- fmt.Errorf("subscriber %d: %w", s, err)
			}
		})
	}
	pubs.Wait()
	for _, r := range rooms {
		heads[r] = uint64(len(published[r]))
	}
	close(final)
	subs.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for s, got := range results {
		for room, msgs := range got {
			want := heads[room] - starts[s][room]
			if uint64(len(msgs)) != want {
				t.Errorf("subscriber %d room %s: %d messages after offset %d, want %d", s, room, len(msgs), starts[s][room], want)
			}
			for i, m := range msgs {
				off := starts[s][room] + uint64(i) + 1
				if m.GetOffset() != off || m.GetText() != published[room][off] {
					t.Fatalf("subscriber %d room %s: message %d is %d %q, want %d %q", s, room, i, m.GetOffset(), m.GetText(), off, published[room][off])
				}
			}
		}
	}
}

// resumingSubscriber joins rooms, reads a random number of messages, drops
// its stream and resumes, until final is closed and it has caught up with
// the heads of its rooms.
func resumingSubscriber(ctx context.Context, nodes []roomcastv1.BrokerServiceClient, rng *rand.Rand, rooms []string, got map[string][]*roomcastv1.Message, starts map[string]uint64, final <-chan struct{}, heads map[string]uint64) error {
	last := map[string]uint64{}
	epochs := map[string]string{}
	for {
		var target map[string]uint64
		select {
		case <-final:
			target = heads
			caughtUp := true
			for _, r := range rooms {
				caughtUp = caughtUp && epochs[r] != "" && last[r] == heads[r]
			}
			if caughtUp {
				return nil
			}
		default:
		}
		sctx, cancel := context.WithCancel(ctx)
		if target == nil { // a read waiting for messages that will never come ends with publishing
			go func() {
				select {
				case <-final:
					cancel()
				case <-sctx.Done():
				}
			}()
		}
		c := nodes[0]
		if len(nodes) > 1 {
			c = nodes[rng.IntN(len(nodes))]
		}
		err := resumeOnce(sctx, c, rng, rooms, got, starts, last, epochs, target)
		cancel()
		if err != nil && ctx.Err() == nil && sctx.Err() == nil {
			return err
		}
	}
}

func resumeOnce(ctx context.Context, c roomcastv1.BrokerServiceClient, rng *rand.Rand, rooms []string, got map[string][]*roomcastv1.Message, starts, last map[string]uint64, epochs map[string]string, target map[string]uint64) error {
	stream, err := c.Subscribe(ctx)
	if err != nil {
		return err
	}
	for _, r := range rooms {
		var pos *roomcastv1.Position
		if e, ok := epochs[r]; ok {
			pos = &roomcastv1.Position{Offset: last[r], Epoch: e}
		}
		if err := stream.Send(joinReq(r, r, pos)); err != nil {
			return err
		}
	}
	budget := rng.IntN(60) // messages to read before dropping the stream, often mid-replay
	for len(epochs) < len(rooms) || !(budget <= 0 || reached(rooms, last, target)) {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if rep := resp.GetReply(); rep != nil {
			j := rep.GetJoin()
			if rep.GetError() != nil {
				return fmt.Errorf("join %s: %v", rep.GetId(), rep.GetError())
			}
			if _, ok := epochs[j.GetRoom()]; !ok {
				epochs[j.GetRoom()], starts[j.GetRoom()], last[j.GetRoom()] = j.GetEpoch(), j.GetOffset(), j.GetOffset()
			} else if !j.GetRecovered() || j.GetEpoch() != epochs[j.GetRoom()] {
				return fmt.Errorf("resume of %s after %d not recovered: %v", j.GetRoom(), last[j.GetRoom()], j)
			}
			continue
		}
		for _, m := range resp.GetBatch().GetMessages() {
			if m.GetOffset() != last[m.GetRoom()]+1 {
				return fmt.Errorf("room %s: offset %d after %d", m.GetRoom(), m.GetOffset(), last[m.GetRoom()])
			}
			last[m.GetRoom()] = m.GetOffset()
			got[m.GetRoom()] = append(got[m.GetRoom()], m)
			budget--
		}
		if len(epochs) == len(rooms) && (budget <= 0 || reached(rooms, last, target)) {
			break
		}
	}
	return nil
}

func reached(rooms []string, last, target map[string]uint64) bool {
	if target == nil {
		return false
	}
	for _, r := range rooms {
		if last[r] != target[r] {
			return false
		}
	}
	return true
}
