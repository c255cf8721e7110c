package interop_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/internal/redisproc"
	"github.com/roomcast/roomcast/internal/redistest"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/faultproxy"
	"github.com/roomcast/roomcast/internal/testsupport/testenv"
	"github.com/roomcast/roomcast/server"
)

// requireRedis skips the test, saying so, without redis-server, or under
// CI fails it.
func requireRedis(t *testing.T) {
	t.Helper()
	if _, err := redisproc.Find(); err != nil {
		testenv.SkipOrFail(t, "the cluster tests need %v", err)
	}
}

// startNodes runs n quiet Go servers sharing one Redis, in a key space of
// the test's, and returns them with their addresses.
func startNodes(t *testing.T, n int, prefix string) ([]*server.Server, []string) {
	t.Helper()
	redis := redistest.Start(t)
	cfg := redisengine.Config{Addrs: []string{redis.Addr}, Prefix: prefix}
	var srvs []*server.Server
	var addrs []string
	for range n {
		engine := broker.WithEngine(redisengine.Factory(context.Background(), cfg))
		srv, addr := servertest.Start(t, server.WithLogger(slog.New(slog.DiscardHandler)), server.WithBrokerOptions(engine))
		srvs, addrs = append(srvs, srv), append(addrs, addr)
	}
	return srvs, addrs
}

// TestResumeOnAnotherNode is TestResume on a cluster of two nodes sharing
// one Redis: each subscriber is on node A through a proxy; A dies while
// node B goes on publishing; the subscriber rejoins on B from its last
// position, recovered, and gets exactly what it missed; then its connection
// to B is cut and it rejoins B again, recovered. It does not run in
// parallel with the other tests (its two languages do, with each other):
// a Redis and two nodes on top of them slow every program's connects.
func TestResumeOnAnotherNode(t *testing.T) {
	for _, l := range []lang{pythonLang, nodeLang} {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			l.require(t)
			requireRedis(t)
			testResumeOnAnotherNode(t, l)
		})
	}
}

func testResumeOnAnotherNode(t *testing.T, l lang) {
	srvs, addrs := startNodes(t, 2, "interop-"+l.name)
	ctx := testCtx(t)
	b := dial(t, addrs[1])
	px := faultproxy.Start(t, addrs[0])
	r := newResumer(t, ctx, startSubscriber(t, ctx, l, px.Addr(), resumeRoom))

	first, last := r.publish(b, 5) // on B, to a subscriber on A
	r.expectMessages(first, last)

	// Node A dies with the subscriber's stream; its reconnects are held
	// until B takes them, and B publishes meanwhile.
	px.Hold()
	srvs[0].Close()
	r.expectDisconnected()
	missedFirst, missedLast := r.publish(b, 10)
	px.Resume(addrs[1])
	join := r.expectRecovered(missedLast)
	r.expectMessages(missedFirst, missedLast) // exactly the missed ones: no duplicate of 1 to 5
	first, last = r.publish(b, 3)
	r.expectMessages(first, last)

	// Cut on B, and back to B: the same epoch, recovered again.
	px.Hold()
	px.Sever()
	r.expectDisconnected()
	missedFirst, missedLast = r.publish(b, 4)
	px.Resume("")
	if again := r.expectRecovered(missedLast); again.Epoch != join.Epoch {
		t.Fatalf("%s rejoined with %s, want the epoch %q of its first rejoin", r.sub.name, again.line, join.Epoch)
	}
	r.expectMessages(missedFirst, missedLast)
}
