package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/redistest"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/server"
)

var clusters atomic.Int64

// startCluster starts n servers sharing one Redis, in a key space of their
// own, with extra broker options; it returns the servers and a client of
// each.
func startCluster(t *testing.T, n int, redis *redistest.Server, opts ...broker.Option) ([]*server.Server, []roomcastv1.BrokerServiceClient) {
	t.Helper()
	return startShardedCluster(t, n, []*redistest.Server{redis}, opts...)
}

// startShardedCluster is startCluster on several Redis shards.
func startShardedCluster(t *testing.T, n int, shards []*redistest.Server, opts ...broker.Option) ([]*server.Server, []roomcastv1.BrokerServiceClient) {
	t.Helper()
	cfg := redisengine.Config{Prefix: fmt.Sprint("cluster", clusters.Add(1))}
	for _, r := range shards {
		cfg.Addrs = append(cfg.Addrs, r.Addr)
	}
	var srvs []*server.Server
	var clients []roomcastv1.BrokerServiceClient
	for range n {
		engine := broker.WithEngine(redisengine.Factory(context.Background(), cfg))
		srv, addr := start(t, server.WithBrokerOptions(append(opts, engine)...))
		srvs = append(srvs, srv)
		clients = append(clients, dial(t, addr))
	}
	return srvs, clients
}

// Publishers on every node into one room: every subscriber on every node
// sees every acknowledged message once, in one order, and each message was
// encoded once, on the node it was published to.
func TestClusterOneOrderEncodedOnce(t *testing.T) {
	srvs, nodes := startCluster(t, 3, redistest.Start(t))
	ctx := testCtx(t)
	var subs []*subscriber
	for _, c := range nodes {
		subs = append(subs, subscribe(t, ctx, c, "room"))
	}
	const perNode = 40
	var mu sync.Mutex
	acked := map[uint64]string{}
	var wg sync.WaitGroup
	for i, c := range nodes {
		wg.Go(func() {
			for j := range perNode {
				text := fmt.Sprint(i, "/", j)
				resp, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "room", Payload: &roomcastv1.PublishRequest_Text{Text: text}})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[resp.GetOffset()] = text
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(acked) != 3*perNode {
		t.Fatalf("%d distinct offsets acknowledged for %d publishes", len(acked), 3*perNode)
	}
	for n, s := range subs {
		for off := uint64(1); off <= 3*perNode; off++ {
			if m := s.next(); m.GetOffset() != off || m.GetText() != acked[off] {
				t.Fatalf("subscriber on node %d: got %d %q, want %d %q", n, m.GetOffset(), m.GetText(), off, acked[off])
			}
		}
	}
	for n, srv := range srvs {
		if st := srv.Broker().Stats(); st.Encoded != perNode || st.Received != 3*perNode {
			t.Errorf("node %d: %d encodes and %d messages received, want %d and %d", n, st.Encoded, st.Received, perNode, 3*perNode)
		}
	}
}

// Three nodes on two Redis shards: rooms spread over both, and every
// subscriber on every node still sees every message of its rooms once, in
// offset order, from publishers on every node.
func TestClusterOnTwoShards(t *testing.T) {
	shards := []*redistest.Server{redistest.Start(t), redistest.Start(t)}
	_, nodes := startShardedCluster(t, 3, shards)
	ctx := testCtx(t)
	rooms := []string{"r.a", "r.b", "r.c", "r.d", "r.e", "r.f"}
	var subs []*subscriber
	for _, c := range nodes {
		subs = append(subs, subscribe(t, ctx, c, rooms...))
	}
	const perRoom = 10
	var wg sync.WaitGroup
	for i, c := range nodes {
		wg.Go(func() {
			for j := range perRoom {
				for k, room := range rooms {
					if k%len(nodes) == i { // each room from one node, so its order is known
						if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: fmt.Sprint(j + 1)}}); err != nil {
							t.Error(err)
							return
						}
					}
				}
			}
		})
	}
	wg.Wait()
	for i, shard := range shards {
		if keys, err := shard.Do(t, "DBSIZE").AsInt64(); err != nil || keys == 0 {
			t.Errorf("shard %d holds %d keys (%v): the rooms were not spread over both", i, keys, err)
		}
	}
	for n, s := range subs {
		next := map[string]uint64{}
		for range perRoom * len(rooms) {
			m := s.next()
			next[m.GetRoom()]++
			if m.GetOffset() != next[m.GetRoom()] || m.GetText() != fmt.Sprint(next[m.GetRoom()]) {
				t.Fatalf("subscriber on node %d: %s got %d %q, want %d", n, m.GetRoom(), m.GetOffset(), m.GetText(), next[m.GetRoom()])
			}
		}
	}
}

// The random-disconnect test of a single server, over three nodes: every
// publish goes to one node, every resume to a random one, and no subscriber
// loses or repeats a message.
func TestClusterRandomDisconnectsResumeOnAnyNode(t *testing.T) {
	redis := redistest.Start(t)
	for seed := range uint64(2) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			_, nodes := startCluster(t, 3, redis, resumeRunLimits...)
			resumeRun(t, seed, nodes)
		})
	}
}

// History on one node sees at once what another acknowledged.
func TestClusterHistoryIsTheSameOnEveryNode(t *testing.T) {
	_, nodes := startCluster(t, 2, redistest.Start(t))
	ctx := testCtx(t)
	for i := range 3 {
		publishText(t, ctx, nodes[0], "h", fmt.Sprint(i))
	}
	h, err := nodes[1].History(ctx, &roomcastv1.HistoryRequest{Room: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.GetMessages()) != 3 || h.GetOffset() != 3 || h.GetMessages()[2].GetText() != "2" {
		t.Errorf("history on the other node: %v", h)
	}
}

// While Redis does not answer, BrokerService's health is NOT_SERVING; it is
// SERVING again once Redis is back, with no restart of the node.
func TestClusterHealthFollowsRedis(t *testing.T) {
	redis := redistest.Start(t)
	cfg := redisengine.Config{Addrs: []string{redis.Addr}, Prefix: "health", Timeout: 300 * time.Millisecond}
	_, addr := start(t, server.WithBrokerOptions(broker.WithEngine(redisengine.Factory(context.Background(), cfg))))
	ctx := testCtx(t)
	health := healthpb.NewHealthClient(servertest.Dial(t, addr))
	waitFor := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for {
			resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: roomcastv1.BrokerService_ServiceDesc.ServiceName})
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetStatus() == want {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("health never became %v", want)
			case <-time.After(50 * time.Millisecond): // polling, with the test's deadline
			}
		}
	}
	waitFor(healthpb.HealthCheckResponse_SERVING)
	redis.Pause(t)
	waitFor(healthpb.HealthCheckResponse_NOT_SERVING)
	redis.Resume(t)
	waitFor(healthpb.HealthCheckResponse_SERVING)
}

// When Redis restarts without its data, a room's subscribers are told, never
// moved past the loss in silence: their streams end with UNAVAILABLE naming
// the last offset sent, a rejoin from it says recovered false, and the room
// goes on in a new epoch.
func TestClusterRedisRestartIsSignalled(t *testing.T) {
	redis := redistest.Start(t)
	_, nodes := startCluster(t, 2, redis)
	ctx := testCtx(t)
	sub := subscribe(t, ctx, nodes[1], "room")
	first, err := nodes[0].Publish(ctx, &roomcastv1.PublishRequest{Room: "room", Payload: &roomcastv1.PublishRequest_Text{Text: "before"}})
	if err != nil {
		t.Fatal(err)
	}
	if m := sub.next(); m.GetText() != "before" {
		t.Fatalf("got %v", m)
	}
	redis.Restart(t) // no persistence: the room's history and epoch are gone
	// The next publish to the room, on either node, shows the loss.
	var after *roomcastv1.PublishResponse
	for after == nil {
		after, err = nodes[0].Publish(ctx, &roomcastv1.PublishRequest{Room: "room", Payload: &roomcastv1.PublishRequest_Text{Text: "after"}})
		if status.Code(err) != codes.Unavailable && err != nil {
			t.Fatal(err)
		}
		if err != nil { // while the node reconnects: poll, within the test's deadline
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	if after.GetEpoch() == first.GetEpoch() {
		t.Fatalf("the room kept its epoch %q across a Redis restart without data", first.GetEpoch())
	}
	st := sub.expectEnd(codes.Unavailable)
	if !strings.Contains(st.Message(), "room=1") {
		t.Errorf("the stream's end does not name the last offset sent: %q", st.Message())
	}
	again := subscribe(t, ctx, nodes[0])
	rep := again.command(joinReq("rejoin", "room", &roomcastv1.Position{Offset: 1, Epoch: first.GetEpoch()}))
	if rep.GetError() != nil || rep.GetJoin().GetRecovered() || rep.GetJoin().GetEpoch() != after.GetEpoch() {
		t.Errorf("rejoin from before the restart: %v, want recovered false in the new epoch %q", rep, after.GetEpoch())
	}
}

// A node that dies takes nothing with it: its subscriber resumes on another
// node from its last position, with nothing lost or repeated.
func TestClusterNodeDeathLosesNothing(t *testing.T) {
	srvs, nodes := startCluster(t, 2, redistest.Start(t))
	ctx := testCtx(t)
	sub := subscribe(t, ctx, nodes[0], "room")
	var epoch string
	for i := 1; i <= 5; i++ {
		resp, err := nodes[1].Publish(ctx, &roomcastv1.PublishRequest{Room: "room", Payload: &roomcastv1.PublishRequest_Text{Text: fmt.Sprint(i)}})
		if err != nil {
			t.Fatal(err)
		}
		epoch = resp.GetEpoch()
	}
	for i := 1; i <= 3; i++ {
		if m := sub.next(); m.GetOffset() != uint64(i) {
			t.Fatalf("got %v, want offset %d", m, i)
		}
	}
	srvs[0].Close() // abruptly: no drain
	for i := 6; i <= 8; i++ {
		publishText(t, ctx, nodes[1], "room", fmt.Sprint(i))
	}
	moved := subscribe(t, ctx, nodes[1])
	rep := moved.command(joinReq("resume", "room", &roomcastv1.Position{Offset: 3, Epoch: epoch}))
	if !rep.GetJoin().GetRecovered() {
		t.Fatalf("resume on the other node: %v", rep)
	}
	for i := 4; i <= 8; i++ {
		if m := moved.next(); m.GetOffset() != uint64(i) || m.GetText() != fmt.Sprint(i) {
			t.Fatalf("after the move: got %d %q, want %d", m.GetOffset(), m.GetText(), i)
		}
	}
}
