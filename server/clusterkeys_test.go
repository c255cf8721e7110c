package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/redistest"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// A publish with an idempotency key on one node, retried on the others,
// is one message: every retry gets the first offset and epoch, and the
// subscribers on every node get it once, the sentinel right after it.
func TestClusterIdempotencyKeyAcrossNodes(t *testing.T) {
	_, nodes := startCluster(t, 3, redistest.Start(t))
	ctx := testCtx(t)
	var subs []*subscriber
	for _, c := range nodes {
		subs = append(subs, subscribe(t, ctx, c, "room"))
	}
	keyed := func(c roomcastv1.BrokerServiceClient, text string) *roomcastv1.PublishResponse {
		t.Helper()
		resp, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "room", IdempotencyKey: "order-17", Payload: &roomcastv1.PublishRequest_Text{Text: text}})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first := keyed(nodes[0], "first")
	for i, c := range nodes {
		if r := keyed(c, fmt.Sprint("retry on node ", i)); r.GetOffset() != first.GetOffset() || r.GetEpoch() != first.GetEpoch() {
			t.Fatalf("retry on node %d: %d/%s, want the first's %d/%s", i, r.GetOffset(), r.GetEpoch(), first.GetOffset(), first.GetEpoch())
		}
	}
	sentinel := publishText(t, ctx, nodes[2], "room", "sentinel")
	if sentinel != first.GetOffset()+1 {
		t.Fatalf("the sentinel got offset %d, want %d: a retry appended", sentinel, first.GetOffset()+1)
	}
	for n, s := range subs {
		for _, want := range []string{"first", "sentinel"} {
			if m := s.next(); m.GetText() != want {
				t.Fatalf("subscriber on node %d: got %d %q, want %q", n, m.GetOffset(), m.GetText(), want)
			}
		}
	}
}

// startAuthCluster starts n nodes on redis that take testjwt's tokens, with
// cfg for their engines.
func startAuthCluster(t *testing.T, n int, redis *redistest.Server, cfg redisengine.Config) []roomcastv1.BrokerServiceClient {
	t.Helper()
	cfg.Prefix, cfg.Addrs = fmt.Sprint("cluster", clusters.Add(1)), []string{redis.Addr}
	var clients []roomcastv1.BrokerServiceClient
	for range n {
		engine := broker.WithEngine(redisengine.Factory(context.Background(), cfg))
		_, addr := start(t, server.WithAuthenticator(testjwt.Authenticator(t)), server.WithBrokerOptions(engine))
		clients = append(clients, dial(t, addr))
	}
	return clients
}

// publishAs publishes text to room through c, naming own as its session
// and exclude as the session to leave out, and returns the call's status.
func publishAs(ctx context.Context, c roomcastv1.BrokerServiceClient, text, own, exclude string) *status.Status {
	_, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r", SessionId: own, ExcludeSession: exclude, Payload: &roomcastv1.PublishRequest_Text{Text: text}})
	return status.Convert(err)
}

// A publish through one node may name its caller's own session open on
// another node, as its own and as the one to exclude, and that node leaves
// the excluded session out; another subject's session there is refused
// with the same words as an id no one has, and so is one that ended, at
// once rather than after the TTL.
func TestClusterSessionsAcrossNodes(t *testing.T) {
	nodes := startAuthCluster(t, 2, redistest.Start(t), redisengine.Config{PresenceTTL: time.Minute})
	ctx := testCtx(t)
	later := time.Now().Add(time.Hour)
	g := testjwt.Grants(t, "r", "r", "")
	alice, bob := bearer(ctx, testjwt.Token(t, "alice", later, g)), bearer(ctx, testjwt.Token(t, "bob", later, g))

	mine := subscribe(t, alice, nodes[0], "r")
	witness := subscribe(t, bob, nodes[0], "r")
	if st := publishAs(alice, nodes[1], "own", mine.session, ""); st.Code() != codes.OK {
		t.Fatalf("naming its own session on the other node: %v", st)
	}
	if st := publishAs(alice, nodes[1], "hidden", "", mine.session); st.Code() != codes.OK {
		t.Fatalf("excluding its own session on the other node: %v", st)
	}
	publishAs(alice, nodes[1], "seen", "", "")
	for _, want := range []string{"own", "seen"} {
		if m := mine.next(); m.GetText() != want {
			t.Fatalf("the excluded session got %q, want %q", m.GetText(), want)
		}
	}
	for _, want := range []string{"own", "hidden", "seen"} {
		if m := witness.next(); m.GetText() != want {
			t.Fatalf("the witness got %q, want %q", m.GetText(), want)
		}
	}

	// Refusals must not tell another owner's live session from no session.
	const unknown = "no-such-session"
	words := func(st *status.Status, id string) string { return strings.ReplaceAll(st.Message(), id, "ID") }
	for _, asOwn := range []bool{true, false} {
		name := func(session string) *status.Status {
			if asOwn {
				return publishAs(bob, nodes[1], "x", session, "")
			}
			return publishAs(bob, nodes[1], "x", "", session)
		}
		st, none := name(mine.session), name(unknown)
		if st.Code() != codes.PermissionDenied || none.Code() != codes.PermissionDenied {
			t.Fatalf("bob naming alice's session on the other node (as his own: %v): %v; an unknown one: %v", asOwn, st, none)
		}
		if words(st, mine.session) != words(none, unknown) {
			t.Errorf("another owner's session is refused with %q, an unknown one with %q", st.Message(), none.Message())
		}
	}

	// An ended session: refused through the other node within a second or
	// so of its end, far less than the TTL of a minute.
	endCtx, end := context.WithCancel(alice)
	gone := subscribe(t, endCtx, nodes[0])
	if st := publishAs(alice, nodes[1], "x", gone.session, ""); st.Code() != codes.OK {
		t.Fatalf("naming its own second session: %v", st)
	}
	end()
	ended := time.Now()
	for {
		st := publishAs(alice, nodes[1], "x", gone.session, "")
		if st.Code() == codes.PermissionDenied {
			break
		}
		if st.Code() != codes.OK || time.Since(ended) > 10*time.Second {
			t.Fatalf("naming its ended session %v after its end: %v", time.Since(ended), st)
		}
	}
}
