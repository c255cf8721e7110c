package main

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/redistest"
)

// Two `roomcast serve --engine redis` on one Redis are one broker: a
// publish to one is in the other's history at once, and a restart of a
// node loses nothing.
func TestServeOnRedis(t *testing.T) {
	redis := redistest.Start(t)
	ctx := testCtx(t)
	a := startServe(t, "--engine", "redis", "--redis-addr", redis.Addr, "--redis-prefix", "serve")
	b := startServe(t, "--engine", "redis", "--redis-addr", redis.Addr, "--redis-prefix", "serve")
	first, err := publish(ctx, dialPlaintext(t, a.addr), "room", "one")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := publish(ctx, dialPlaintext(t, b.addr), "room", "two"); err != nil {
		t.Fatal(err)
	}
	c := startServe(t, "--engine", "redis", "--redis-addr", redis.Addr, "--redis-prefix", "serve") // a node that came later
	h, err := dialPlaintext(t, c.addr).History(ctx, &roomcastv1.HistoryRequest{Room: "room"})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.GetMessages()) != 2 || h.GetMessages()[1].GetText() != "two" || h.GetEpoch() != first.GetEpoch() || h.GetOffset() != 2 {
		t.Errorf("history on a third node: %v", h)
	}
	redis.Kill()
	if _, err := publish(ctx, dialPlaintext(t, a.addr), "room", "lost?"); status.Code(err) != codes.Unavailable {
		t.Errorf("publish with Redis down: %v, want UNAVAILABLE", err)
	}
}

func TestServeEngineFlagsAreChecked(t *testing.T) {
	ctx := testCtx(t)
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--engine", "etcd"}, "--engine must be memory or redis"},
		{[]string{"--engine", "redis"}, "--engine redis needs --redis-addr"},
		{[]string{"--redis-addr", "127.0.0.1:6379"}, "--redis-addr needs --engine redis"},
		{[]string{"--engine", "redis", "--redis-addr", "10.1.2.3:6379"}, "not a loopback address"},
		{[]string{"--engine", "redis", "--redis-addr", "nohostport"}, "--redis-addr"},
		{[]string{"--engine", "redis", "--redis-addr", "127.0.0.1:6379", "--redis-timeout", "0s"}, "--redis-timeout"},
	} {
		code, _, stderr := runCmd(ctx, append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", ""}, tc.args...)...)
		if code != exitUsage || !strings.Contains(stderr, tc.says) {
			t.Errorf("%q: exit %d, stderr:\n%s\nwant exit %d and %q", tc.args, code, stderr, exitUsage, tc.says)
		}
	}
	// A Redis that does not answer: the server does not start, and says
	// which.
	redis := redistest.Start(t)
	addr := redis.Addr
	redis.Kill()
	code, _, stderr := runCmd(ctx, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "", "--engine", "redis", "--redis-addr", addr, "--redis-timeout", "200ms")
	if code != exitFail || !strings.Contains(stderr, addr) {
		t.Errorf("Redis down at start: exit %d, stderr:\n%s\nwant exit %d naming %s", code, stderr, exitFail, addr)
	}
}
