package client_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/client"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/server"
)

func TestHistory(t *testing.T) {
	_, addr := start(t, server.WithBrokerOptions(broker.WithHistory(4, time.Hour)))
	ctx := testCtx(t)
	c := dial(t, addr)
	empty, err := c.History(ctx, "news", client.HistoryQuery{})
	if err != nil || len(empty.Messages) != 0 || empty.Head != (client.Position{}) {
		t.Fatalf("history of a room never published to: %+v, %v", empty, err)
	}
	var epoch string
	for _, text := range []string{"one", "two", "three", "four", "five"} {
		if _, err := c.PublishText(ctx, "news", text); err != nil {
			t.Fatal(err)
		}
	}
	texts := func(p *client.HistoryPage) (out []string) {
		for _, m := range p.Messages {
			out = append(out, m.GetText())
		}
		return out
	}
	for _, tc := range []struct {
		q    client.HistoryQuery
		want []string
	}{
		{client.HistoryQuery{}, []string{"two", "three", "four", "five"}}, // the room keeps 4
		{client.HistoryQuery{After: 3}, []string{"four", "five"}},
		{client.HistoryQuery{Limit: 2}, []string{"two", "three"}},
		{client.HistoryQuery{Limit: 2, NewestFirst: true}, []string{"five", "four"}},
		{client.HistoryQuery{After: 5}, nil},
		{client.HistoryQuery{After: 99}, nil},
	} {
		page, err := c.History(ctx, "news", tc.q)
		if err != nil {
			t.Fatalf("%+v: %v", tc.q, err)
		}
		if got := texts(page); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: %q, want %q", tc.q, got, tc.want)
		}
		if page.Head.Offset != 5 || page.Head.Epoch == "" || (epoch != "" && page.Head.Epoch != epoch) {
			t.Errorf("%+v: head %+v, want offset 5 of one epoch", tc.q, page.Head)
		}
		epoch = page.Head.Epoch
	}
	if _, err := c.History(ctx, "bad room", client.HistoryQuery{}); !errors.Is(err, client.ErrInvalidArgument) || status.Code(err) != codes.InvalidArgument {
		t.Errorf("history of a bad name: %v, want ErrInvalidArgument", err)
	}
	c.Close()
	if _, err := c.History(ctx, "news", client.HistoryQuery{}); !errors.Is(err, client.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}

func TestPresence(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	if list, err := c.Presence(ctx, "chat", 0); err != nil || len(list.Members) != 0 || list.Total != 0 {
		t.Fatalf("presence of an empty room: %+v, %v", list, err)
	}
	// Two members that joined with presence, and a subscriber that did not.
	subscribe(t, ctx, c, "chat")
	stub := roomcastv1.NewBrokerServiceClient(servertest.Dial(t, addr))
	var sessions []string
	for _, name := range []string{"ada", "grace"} {
		stream, err := stub.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		first, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, first.GetSession().GetSessionId())
		if err := stream.Send(&roomcastv1.SubscribeRequest{Id: "1", Command: &roomcastv1.SubscribeRequest_Join{
			Join: &roomcastv1.JoinCommand{Room: "chat", Presence: true, Info: map[string]string{"name": name}}}}); err != nil {
			t.Fatal(err)
		}
		if reply, err := stream.Recv(); err != nil || reply.GetReply().GetError() != nil {
			t.Fatalf("join with presence: %v %v", reply, err)
		}
	}
	list, err := c.Presence(ctx, "chat", 0)
	if err != nil || list.Total != 2 || len(list.Members) != 2 ||
		list.Members[0].GetSessionId() != sessions[0] || list.Members[0].GetInfo()["name"] != "ada" || list.Members[1].GetInfo()["name"] != "grace" {
		t.Fatalf("presence: %+v, %v; want ada then grace", list, err)
	}
	if list, err := c.Presence(ctx, "chat", 1); err != nil || list.Total != 2 || len(list.Members) != 1 {
		t.Errorf("presence with a limit of 1: %+v, %v; want 1 of 2", list, err)
	}
}
