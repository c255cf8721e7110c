//go:build unix

package server_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// The checks of the README's AdminService recipes (see readme_test.go).
// Each recipe runs from 127.0.0.1 against a server without credentials,
// which answers AdminService from loopback.

func checkAdminInfo(t *testing.T, rc recipeCase) {
	ctx := testCtx(t)
	publishText(t, ctx, dial(t, rc.addr), "chat.lobby", "hi")
	var resp roomcastv1.GetServerInfoResponse
	unmarshalOutput(t, rc.run(t), &resp)
	if resp.GetVersion() == "" || resp.GetEngine() != "memory" || resp.GetUptime() == nil || resp.GetLimits().GetMaxMessageBytes() == 0 || resp.GetCounters().GetPublished() != 1 {
		t.Errorf("GetServerInfo printed %v, want a version, the memory engine, an uptime, limits and one message published", &resp)
	}
}

func checkAdminRooms(t *testing.T, rc recipeCase) {
	var req roomcastv1.ListRoomsRequest
	rc.request(t, &req)
	ctx := testCtx(t)
	c := dial(t, rc.addr)
	in := req.GetPrefix() + "lobby"
	publishText(t, ctx, c, in, "hi")
	publishText(t, ctx, c, in, "again")
	publishText(t, ctx, c, "elsewhere", "hi")
	var resp roomcastv1.ListRoomsResponse
	unmarshalOutput(t, rc.run(t), &resp)
	if rs := resp.GetRooms(); len(rs) != 1 || rs[0].GetName() != in || rs[0].GetOffset() != 2 || rs[0].GetRetainedMessages() != 2 || rs[0].GetPublishRate() <= 0 || resp.GetTotal() != 2 {
		t.Errorf("ListRooms printed %v, want %s alone of 2 rooms, at offset 2 with a rate", &resp, in)
	}
}

func checkAdminRoom(t *testing.T, rc recipeCase) {
	var req roomcastv1.GetRoomRequest
	rc.request(t, &req)
	ctx := testCtx(t)
	c := dial(t, rc.addr)
	sub := subscribe(t, ctx, c, req.GetRoom())
	publishText(t, ctx, c, req.GetRoom(), "hi")
	sub.next()
	var resp roomcastv1.GetRoomResponse
	unmarshalOutput(t, rc.run(t), &resp)
	ss := resp.GetSessions()
	if resp.GetRoom().GetName() != req.GetRoom() || resp.GetRoom().GetSubscribers() != 1 || len(ss) != 1 || ss[0].GetSessionId() != sub.session || ss[0].GetMessagesDelivered() != 1 {
		t.Errorf("GetRoom printed %v, want %s with session %s, 1 message delivered", &resp, req.GetRoom(), sub.session)
	}
}

func checkAdminSessions(t *testing.T, rc recipeCase) {
	var req roomcastv1.ListSessionsRequest
	rc.request(t, &req)
	ctx := testCtx(t)
	sub := subscribe(t, ctx, dial(t, rc.addr), "chat.lobby")
	var resp roomcastv1.ListSessionsResponse
	unmarshalOutput(t, rc.run(t), &resp)
	ss := resp.GetSessions()
	if len(ss) != 1 || ss[0].GetSessionId() != sub.session || ss[0].GetSubject() != req.GetSubject() || len(ss[0].GetRooms()) != 1 {
		t.Errorf("ListSessions printed %v, want session %s of %s in one room", &resp, sub.session, req.GetSubject())
	}
}

func checkAdminDisconnect(t *testing.T, rc recipeCase) {
	var req roomcastv1.DisconnectSessionsRequest
	rc.request(t, &req)
	ctx := testCtx(t)
	sub := subscribe(t, ctx, dial(t, rc.addr), "chat.lobby")
	var resp roomcastv1.DisconnectSessionsResponse
	unmarshalOutput(t, rc.run(t), &resp)
	if resp.GetDisconnected() != 1 {
		t.Errorf("DisconnectSessions printed %v, want 1 disconnected", &resp)
	}
	if st := sub.expectEnd(codes.Unavailable); !strings.Contains(st.Message(), "disconnected by an administrator: "+req.GetReason()) {
		t.Errorf("the stream ended with %q, want it to say an administrator disconnected it, and why", st.Message())
	}
}

func checkAdminClose(t *testing.T, rc recipeCase) {
	var req roomcastv1.CloseRoomRequest
	rc.request(t, &req)
	ctx := testCtx(t)
	c := dial(t, rc.addr)
	sub := subscribe(t, ctx, c, req.GetRoom())
	publishText(t, ctx, c, req.GetRoom(), "hi")
	sub.next()
	var resp roomcastv1.CloseRoomResponse
	unmarshalOutput(t, rc.run(t), &resp)
	if resp.GetSessions() != 1 || resp.GetDroppedMessages() != 1 {
		t.Errorf("CloseRoom printed %v, want 1 session and 1 message dropped", &resp)
	}
	if st := sub.expectEnd(codes.Unavailable); !strings.Contains(st.Message(), "was closed by an administrator") {
		t.Errorf("the stream ended with %q, want it to say the room was closed", st.Message())
	}
}
