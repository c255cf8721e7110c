package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// watchOpener opens Watch calls one way: grpc-go on the gRPC port, or a
// connect-go protocol on the web port.
type watchOpener struct {
	name string
	open func(t *testing.T, ctx context.Context, grpcAddr, webBase string, rooms ...*roomcastv1.JoinCommand) *webWatch
}

func watchOpeners() []watchOpener {
	out := []watchOpener{{name: "grpc-go", open: func(t *testing.T, ctx context.Context, grpcAddr, _ string, rooms ...*roomcastv1.JoinCommand) *webWatch {
		return watchGRPC(t, ctx, dial(t, grpcAddr), rooms...)
	}}}
	for _, p := range webProtocols {
		out = append(out, watchOpener{name: p.name, open: func(t *testing.T, ctx context.Context, _, webBase string, rooms ...*roomcastv1.JoinCommand) *webWatch {
			return watchWeb(t, ctx, p.client(t, webBase), "", rooms...)
		}})
	}
	return out
}

// A Watch greets, answers each room in the request's order with the room's
// name as the id, resumes a room from a position with no gap and no
// duplicate (recovered), says recovered: false when it cannot, and delivers
// every later message in order: on gRPC and on every web protocol.
func TestWatchResumesAndDeliversOnEveryProtocol(t *testing.T) {
	for _, o := range watchOpeners() {
		t.Run(o.name, func(t *testing.T) {
			srv, addr := start(t)
			web := startWeb(t, srv)
			ctx := testCtx(t)
			c := dial(t, addr)
			var epoch string
			for i := 1; i <= 3; i++ {
				resp, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "a", Payload: &roomcastv1.PublishRequest_Text{Text: fmt.Sprint("a", i)}})
				if err != nil {
					t.Fatal(err)
				}
				epoch = resp.GetEpoch()
			}
			publishText(t, ctx, c, "c", "c1")
			w := o.open(t, ctx, addr, web,
				&roomcastv1.JoinCommand{Room: "a", Position: &roomcastv1.Position{Offset: 1, Epoch: epoch}},
				&roomcastv1.JoinCommand{Room: "b"},
				&roomcastv1.JoinCommand{Room: "c", Position: &roomcastv1.Position{Offset: 1, Epoch: "another-epoch"}},
			)
			replies := w.greeting("a", "b", "c")
			if j := replies[0].GetJoin(); !j.GetRecovered() || j.GetOffset() != 3 || j.GetEpoch() != epoch {
				t.Errorf("join a: %v, want recovered at offset 3 of epoch %s", replies[0], epoch)
			}
			if replies[1].GetJoin() == nil || replies[1].GetError() != nil {
				t.Errorf("join b: %v", replies[1])
			}
			if j := replies[2].GetJoin(); j == nil || j.GetRecovered() {
				t.Errorf("join c: %v, want recovered: false", replies[2])
			}
			for i := 2; i <= 3; i++ {
				if m := w.next(); m.GetRoom() != "a" || m.GetOffset() != uint64(i) || m.GetText() != fmt.Sprint("a", i) {
					t.Fatalf("resumed message %v, want a%d", m, i)
				}
			}
			publishText(t, ctx, c, "b", "b1")
			publishText(t, ctx, c, "a", "a4")
			publishText(t, ctx, c, "c", "c2")
			want := map[string]string{"a": "a4", "b": "b1", "c": "c2"}
			for range want {
				m := w.next()
				if want[m.GetRoom()] != m.GetText() {
					t.Fatalf("got %v, want one of %v", m, want)
				}
				delete(want, m.GetRoom())
			}
		})
	}
}

// A Watch request that cannot be served as a whole fails with
// INVALID_ARGUMENT before anything is sent.
func TestWatchRefusesABadRequest(t *testing.T) {
	srv, addr := start(t, server.WithMaxRoomsPerSession(3))
	web := startWeb(t, srv)
	long := strings.Repeat("r", 201)
	for _, tc := range []struct {
		name  string
		rooms []*roomcastv1.JoinCommand
		want  string
	}{
		{"no rooms", nil, "names no room"},
		{"a room twice", rooms("a", "b", "a"), "named twice"},
		{"too many rooms", rooms("a", "b", "c", "d"), "the limit is 3"},
		{"a bad room name", rooms("a", "b c"), "rooms[1]"},
		{"a room name too long", rooms(long), "rooms[0]"},
		{"too much presence info", []*roomcastv1.JoinCommand{{Room: "a", Info: map[string]string{"k": strings.Repeat("v", 2<<10)}}}, "presence info"},
	} {
		for _, o := range watchOpeners()[:3] {
			t.Run(tc.name+"/"+o.name, func(t *testing.T) {
				w := o.open(t, testCtx(t), addr, web, tc.rooms...)
				if msg := w.expectEnd(codes.InvalidArgument); !strings.Contains(msg, tc.want) {
					t.Errorf("message %q does not say %q", msg, tc.want)
				}
			})
		}
	}
}
