package interop_test

import (
	"fmt"
	"log/slog"
	"net"
	"testing"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/server"
)

// TestNodeWatch runs examples/node/watch.ts, a Watch call of Connect for
// Node, against the server's web handler, in binary over HTTP/2 (h2c) and
// in JSON over HTTP/1.1: it gets what Go publishes; a new call resuming from
// a position gets every message after it once (recovered: true); one from a
// position of another epoch is told recovered: false and gets only what
// follows.
func TestNodeWatch(t *testing.T) {
	t.Parallel()
	nodeLang.require(t)
	for i, tc := range []struct {
		name string
		args []string
	}{
		{"binary on HTTP/2", nil},
		{"JSON on HTTP/1.1", []string{"--http1", "--json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testNodeWatch(t, fmt.Sprint("interop.watch.", i), tc.args)
		})
	}
}

func testNodeWatch(t *testing.T, room string, args []string) {
	srv, addr := servertest.Start(t, server.WithLogger(slog.New(slog.DiscardHandler)))
	web := serveWeb(t, srv)
	ctx := testCtx(t)
	c := dial(t, addr)
	var texts []string // by offset - 1
	publish := func(k int) {
		t.Helper()
		for range k {
			text := fmt.Sprint("message ", len(texts)+1)
			resp, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: text}})
			if err != nil {
				t.Fatal(err)
			}
			texts = append(texts, text)
			if resp.GetOffset() != uint64(len(texts)) {
				t.Fatalf("published %q at offset %d, want %d", text, resp.GetOffset(), len(texts))
			}
		}
	}
	watch := func(extra ...string) (*proc, event) {
		t.Helper()
		argv := append(nodeLang.argv("watch"), "--server", web)
		argv = append(append(append(argv, args...), extra...), room)
		p := startProc(t, "node watch", nil, argv...)
		return p, p.expect(ctx, "joined")
	}
	// expect checks that p's next messages are those of offsets first to last.
	expect := func(p *proc, first, last int) {
		t.Helper()
		for i, ev := range p.messages(ctx, last-first+1) {
			m := ev.msg(t)
			if want := first + i; m.GetRoom() != room || m.GetOffset() != uint64(want) || m.GetText() != texts[want-1] {
				t.Fatalf("%s got %s, want offset %d %q", p.name, ev.line, want, texts[want-1])
			}
		}
	}

	p, joined := watch()
	if joined.Resumed || joined.Offset != "0" || joined.Epoch == "" || joined.Room != room {
		t.Fatalf("first watch joined with %s", joined.line)
	}
	epoch := joined.Epoch
	publish(3)
	expect(p, 1, 3)
	p.stop()

	publish(2) // while nobody watches
	p, joined = watch("--from", fmt.Sprintf("%s=3@%s", room, epoch))
	if !joined.Resumed || !joined.Recovered || joined.Epoch != epoch {
		t.Fatalf("watch from offset 3 joined with %s, want recovered: true", joined.line)
	}
	publish(1)
	expect(p, 4, 6) // the two it missed, then the live one: no duplicate of 3
	p.stop()

	p, joined = watch("--from", room+"=3@not-the-epoch")
	if !joined.Resumed || joined.Recovered || joined.Offset != "6" || joined.Epoch != epoch {
		t.Fatalf("watch from another epoch joined with %s, want recovered: false at offset 6", joined.line)
	}
	publish(1)
	expect(p, 7, 7)
}

// serveWeb serves srv's web port (ServeWeb, as `roomcast serve
// --http-listen` runs it: HTTP/1.1 and h2c) on a loopback port, until srv
// closes at the end of the test, and returns its base URL.
func serveWeb(t *testing.T, srv *server.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() {
		err := srv.ServeWeb(lis)
		lis.Close() // ServeWeb leaves it open when Close came first
		served <- err
	}()
	t.Cleanup(func() {
		srv.Close() // idempotent: servertest closes it too
		if err := <-served; err != nil {
			t.Errorf("ServeWeb: %v", err)
		}
	})
	return "http://" + lis.Addr().String()
}
