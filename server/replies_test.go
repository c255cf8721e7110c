package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A History response stops short of its limit at 1 MiB, well under what a
// stock client accepts (4 MiB), and the client pages on with after.
func TestHistoryResponsesAreCappedAndPage(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	for i := range 5 {
		publishText(t, ctx, c, "r", fmt.Sprint(i+1)+strings.Repeat(".", 300<<10)) // 1.5 MB in all
	}
	var got []uint64
	var after uint64
	for range 5 {
		h, err := c.History(ctx, &roomcastv1.HistoryRequest{Room: "r", After: after})
		if err != nil {
			t.Fatal(err)
		}
		if size := proto.Size(h); size > 1<<20 {
			t.Errorf("a History response of %d bytes", size)
		}
		for _, m := range h.GetMessages() {
			got = append(got, m.GetOffset())
			after = m.GetOffset()
		}
		if after >= h.GetOffset() {
			break
		}
	}
	if fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Errorf("paged through offsets %v, want 1 to 5", got)
	}
	h, err := c.History(ctx, &roomcastv1.HistoryRequest{Room: "r", NewestFirst: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(h.GetMessages()); n != 3 || h.GetMessages()[0].GetOffset() != 5 {
		t.Errorf("newest first: %d messages from offset %d, want 3 from offset 5", n, h.GetMessages()[0].GetOffset())
	}
}

// A Presence response holds the members that fit in 1 MiB, and its total
// says how many there are.
func TestPresenceResponsesAreCapped(t *testing.T) {
	srv, addr := start(t)
	ctx := testCtx(t)
	info := map[string]string{"bio": strings.Repeat("i", 1000)}
	const members = 1100 // about 1.15 MB of members
	for i := range members {
		sub := srv.Broker().NewSubscriber(fmt.Sprintf("S%04d", i))
		t.Cleanup(sub.Close)
		if _, err := sub.Join(context.Background(), "r", broker.JoinOptions{Presence: true, Info: info}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := dial(t, addr).Presence(ctx, &roomcastv1.PresenceRequest{Room: "r", Limit: 2000})
	if err != nil {
		t.Fatal(err)
	}
	if size := proto.Size(p); size > 1<<20 || len(p.GetMembers()) < 900 || len(p.GetMembers()) >= members || p.GetTotal() != members {
		t.Errorf("presence of %d members: %d members in %d bytes, total %d; want fewer than all in at most 1 MiB, and the total", members, len(p.GetMembers()), size, p.GetTotal())
	}
	if first := p.GetMembers()[0].GetSessionId(); first != "S0000" {
		t.Errorf("first member %s, want the oldest, S0000", first)
	}
}
