package web_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/redistest"
	"github.com/roomcast/roomcast/server"
)

// TestLiveAndPublish: in each of the page's protocols, the page shows what
// Go publishes, as it comes, and what is typed into its form reaches a Go
// subscriber (and the page itself); the page's calls are cross-origin, so
// this exercises the web handler's CORS.
func TestLiveAndPublish(t *testing.T) {
	dist := bundle(t)
	b := browser(t)
	origin := servePage(t, dist)
	n := startNode(t)
	web := n.serveWeb("127.0.0.1:0", origin)
	ctx := testCtx(t)

	for i, tc := range []struct{ name, param, value string }{
		{"connect binary", "", ""},
		{"connect JSON", "format", "json"},
		{"gRPC-Web", "protocol", "grpcweb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			room := fmt.Sprintf("web.live.%d", i)
			q := url.Values{"server": {web}, "room": {room}}
			if tc.param != "" {
				q.Set(tc.param, tc.value)
			}
			p := openPage(t, b, origin, q)
			p.waitFor("that it is connected", `document.getElementById("status").dataset.state === "connected"`)
			sub := subscribe(t, ctx, n.client, room)

			texts := []string{"hello, browser", "ünïcödé 🎉 <b>not bold</b>"}
			for _, text := range texts {
				n.publish(t, ctx, room, text)
			}
			its := p.waitMessages(len(texts))
			for i, text := range texts {
				if it := its[i]; it.Kind != "message" || it.offset(t) != uint64(i+1) || it.Body != text || it.Room != room {
					t.Errorf("item %d is %v, want %s#%d %q", i, it, room, i+1, text)
				}
			}

			const typed = "typed into the page"
			err := chromedp.Do(p.ctx,
				chromedp.SendKeys(chromedp.ID("publish-text"), typed),
				chromedp.Click(chromedp.ID("publish-button")))
			if err != nil {
				t.Fatal(err)
			}
			p.waitFor("that the publish went through", `document.getElementById("publish-result").dataset.state === "ok"`)
			for _, text := range append(texts, typed) {
				if m := sub.next(); m.GetText() != text {
					t.Fatalf("the Go subscriber got %v, want %q", m, text)
				}
			}
			its = p.waitMessages(len(texts) + 1)
			if it := its[len(texts)]; it.Body != typed || it.offset(t) != uint64(len(texts)+1) {
				t.Errorf("the page shows %v for what it published", it)
			}
		})
	}
}

// TestResumeAcrossRestart: with history in Redis, which outlives the
// server, the page rides out a restart of the server it watches: what was
// published meanwhile, on another node, and after the restart, it shows
// once each, in order, in the same epoch, with no gap.
func TestResumeAcrossRestart(t *testing.T) {
	dist := bundle(t)
	redis := redistest.Start(t)
	b := browser(t)
	origin := servePage(t, dist)
	ctx := testCtx(t)
	withRedis := func() server.Option {
		cfg := redisengine.Config{Addrs: []string{redis.Addr}, Prefix: "web"}
		return server.WithBrokerOptions(broker.WithEngine(redisengine.Factory(context.Background(), cfg)))
	}
	const room = "web.resume"
	n1, other := startNode(t, withRedis()), startNode(t, withRedis())
	web := n1.serveWeb("127.0.0.1:0", origin)
	p := openPage(t, b, origin, url.Values{"server": {web}, "room": {room}})
	p.waitFor("that it is connected", `document.getElementById("status").dataset.state === "connected"`)

	var want []string
	publish := func(n *node, k int) string {
		var epoch string
		for range k {
			text := fmt.Sprintf("message %d", len(want)+1)
			_, epoch = n.publish(t, ctx, room, text)
			want = append(want, text)
		}
		return epoch
	}
	epoch := publish(n1, 3)
	p.waitMessages(3)

	n1.stop()
	p.waitFor("that it is reconnecting", `document.getElementById("status").dataset.state === "reconnecting"`)
	publish(other, 3) // while the page's server is down
	n2 := startNode(t, withRedis())
	publish(n2, 1) // restarted, before the page is back
	n2.serveWeb(n1.web, origin)
	p.waitFor("that it is connected again", `document.getElementById("status").dataset.state === "connected"`)
	if e := publish(n2, 2); e != epoch {
		t.Fatalf("the room's epoch went from %s to %s across the restart: Redis should have kept it", epoch, e)
	}

	its := p.waitMessages(len(want))
	if len(its) != len(want) {
		t.Fatalf("the page shows %d items for %d messages:\n%s", len(its), len(want), p.dump())
	}
	for i, it := range its {
		if it.Kind != "message" || it.offset(t) != uint64(i+1) || it.Epoch != epoch || it.Body != want[i] {
			t.Fatalf("item %d is %v, want %s#%d@%s %q; the page shows:\n%s", i, it, room, i+1, epoch, want[i], p.dump())
		}
	}
}

// TestGapAfterRestart: a server that keeps history in memory loses it in a
// restart, and the room starts a new epoch; the page, resuming, is told
// recovered: false and shows the gap, with the offsets of the new epoch it
// missed, then goes on with live messages.
func TestGapAfterRestart(t *testing.T) {
	dist := bundle(t)
	b := browser(t)
	origin := servePage(t, dist)
	ctx := testCtx(t)
	const room = "web.gap"
	n1 := startNode(t)
	web := n1.serveWeb("127.0.0.1:0", origin)
	p := openPage(t, b, origin, url.Values{"server": {web}, "room": {room}})
	p.waitFor("that it is connected", `document.getElementById("status").dataset.state === "connected"`)
	_, epoch1 := n1.publish(t, ctx, room, "before 1")
	n1.publish(t, ctx, room, "before 2")
	p.waitMessages(2)

	n1.stop()
	p.waitFor("that it is reconnecting", `document.getElementById("status").dataset.state === "reconnecting"`)
	n2 := startNode(t)
	n2.publish(t, ctx, room, "missed 1") // before the page is back: lost to it
	_, epoch2 := n2.publish(t, ctx, room, "missed 2")
	if epoch2 == epoch1 {
		t.Fatalf("the restarted server kept epoch %s", epoch1)
	}
	n2.serveWeb(n1.web, origin)
	p.waitFor("the gap", `document.querySelector("#messages li.gap") !== null`)
	n2.publish(t, ctx, room, "after")

	p.waitMessages(3)
	want := []string{
		fmt.Sprintf("%s#1@%s %q", room, epoch1, "before 1"),
		fmt.Sprintf("%s#2@%s %q", room, epoch1, "before 2"),
		fmt.Sprintf("gap %s:1-2@%s", room, epoch2),
		fmt.Sprintf("%s#3@%s %q", room, epoch2, "after"),
	}
	its := p.items()
	got := make([]string, len(its))
	for i, it := range its {
		got[i] = it.String()
	}
	p.screenshot("roomcast-web-gap.png")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the page shows\n%q\nwant\n%q", got, want)
	}
	if s := p.status(); s != "connected; gap in "+room+": recovered: false" {
		t.Errorf("status %q, want it to say recovered: false", s)
	}
}

// goSubscriber is a Subscribe stream of the Go client.
type goSubscriber struct {
	t       *testing.T
	stream  roomcastv1.BrokerService_SubscribeClient
	pending []*roomcastv1.Message
}

// subscribe joins room on a Subscribe stream and returns once joined.
func subscribe(t *testing.T, ctx context.Context, c roomcastv1.BrokerServiceClient, room string) *goSubscriber {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	stream, err := c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	join := &roomcastv1.SubscribeRequest{Id: "j", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: room}}}
	if err := stream.Send(join); err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if rep := resp.GetReply(); rep != nil {
			if rep.GetError() != nil {
				t.Fatalf("join %s: %v", room, rep.GetError())
			}
			return &goSubscriber{t: t, stream: stream}
		}
	}
}

// next returns the next message; the stream's context bounds the wait.
func (s *goSubscriber) next() *roomcastv1.Message {
	s.t.Helper()
	for len(s.pending) == 0 {
		resp, err := s.stream.Recv()
		if err != nil {
			s.t.Fatalf("Go subscriber: %v", err)
		}
		s.pending = resp.GetBatch().GetMessages()
	}
	m := s.pending[0]
	s.pending = s.pending[1:]
	return m
}
