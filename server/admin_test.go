package server_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
)

func dialAdmin(t testing.TB, addr string) roomcastv1.AdminServiceClient {
	t.Helper()
	return roomcastv1.NewAdminServiceClient(servertest.Dial(t, addr))
}

// TestAdminNeedsTheAdminGrant checks every AdminService method against a
// server with credentials: refused without a credential, refused with one
// that lacks the admin grant, answered with one that has it.
func TestAdminNeedsTheAdminGrant(t *testing.T) {
	addr := testjwt.StartServer(t)
	ctx := testCtx(t)
	a := dialAdmin(t, addr)
	future := time.Now().Add(time.Hour)
	admin := testjwt.Grants(t, "", "", "")
	admin.Admin = true
	calls := map[string]func(ctx context.Context) error{
		"GetServerInfo": func(ctx context.Context) error {
			_, err := a.GetServerInfo(ctx, &roomcastv1.GetServerInfoRequest{})
			return err
		},
		"ListRooms": func(ctx context.Context) error {
			_, err := a.ListRooms(ctx, &roomcastv1.ListRoomsRequest{})
			return err
		},
		"ListSessions": func(ctx context.Context) error {
			_, err := a.ListSessions(ctx, &roomcastv1.ListSessionsRequest{})
			return err
		},
		"DisconnectSessions": func(ctx context.Context) error {
			_, err := a.DisconnectSessions(ctx, &roomcastv1.DisconnectSessionsRequest{Target: &roomcastv1.DisconnectSessionsRequest_Subject{Subject: "nobody"}})
			return err
		},
		"GetRoom": func(ctx context.Context) error {
			_, err := a.GetRoom(ctx, &roomcastv1.GetRoomRequest{Room: "nowhere"})
			return err
		},
		"CloseRoom": func(ctx context.Context) error {
			_, err := a.CloseRoom(ctx, &roomcastv1.CloseRoomRequest{Room: "nowhere"})
			return err
		},
	}
	for name, call := range calls {
		granted := codes.OK
		if name == "GetRoom" || name == "CloseRoom" {
			granted = codes.NotFound // allowed, and the room is not there
		}
		for _, tc := range []struct {
			who  string
			ctx  context.Context
			want codes.Code
		}{
			{"no credential", ctx, codes.Unauthenticated},
			{"every room, no admin grant", bearer(ctx, testjwt.Token(t, "ops", future, testjwt.Grants(t, ">", ">", ">"))), codes.PermissionDenied},
			{"admin", bearer(ctx, testjwt.Token(t, "ops", future, admin)), granted},
		} {
			if err := call(tc.ctx); status.Code(err) != tc.want {
				t.Errorf("%s with %s: %v, want %v", name, tc.who, err, tc.want)
			}
		}
	}
}

// TestAdminRoomsAndSessions checks what the listing calls report of two
// subjects' sessions in rooms with messages.
func TestAdminRoomsAndSessions(t *testing.T) {
	addr := testjwt.StartServer(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	a := dialAdmin(t, addr)
	future := time.Now().Add(time.Hour)
	grants := testjwt.Grants(t, "chat.>", "chat.>", "")
	admin := testjwt.Grants(t, "", "", "")
	admin.Admin = true
	actx := bearer(ctx, testjwt.Token(t, "ops", future, admin))
	ada := subscribe(t, bearer(ctx, testjwt.Token(t, "ada", future, grants)), c, "chat.a", "chat.b")
	bob := subscribe(t, bearer(ctx, testjwt.Token(t, "bob", future, grants)), c, "chat.b")
	pctx := bearer(ctx, testjwt.Token(t, "pub", future, grants))
	for range 3 {
		publishText(t, pctx, c, "chat.a", "hello")
	}
	publishText(t, pctx, c, "chat.b", "hi")
	for range 3 {
		ada.next()
	}
	ada.next()
	bob.next()

	// Two pages of one room each, then none.
	var names []string
	token := ""
	for range 3 {
		resp, err := a.ListRooms(actx, &roomcastv1.ListRoomsRequest{Limit: 1, PageToken: token, Prefix: "chat."})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetTotal() != 2 {
			t.Errorf("total %d, want 2", resp.GetTotal())
		}
		for _, r := range resp.GetRooms() {
			names = append(names, r.GetName())
			if r.GetName() == "chat.a" && (r.GetSubscribers() != 1 || r.GetOffset() != 3 || r.GetRetainedMessages() != 3 || r.GetRetainedBytes() == 0 || r.GetPublishRate() <= 0 || r.GetEpoch() == "" || r.GetLastPublishTime() == nil) {
				t.Errorf("chat.a: %v", r)
			}
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if !slices.Equal(names, []string{"chat.a", "chat.b"}) {
		t.Errorf("pages listed %q, want chat.a then chat.b", names)
	}

	room, err := a.GetRoom(actx, &roomcastv1.GetRoomRequest{Room: "chat.b"})
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, s := range room.GetSessions() {
		subjects = append(subjects, s.GetSubject())
	}
	slices.Sort(subjects)
	if room.GetSessionsTotal() != 2 || !slices.Equal(subjects, []string{"ada", "bob"}) || room.GetRoom().GetSubscribers() != 2 {
		t.Errorf("GetRoom(chat.b): %v, want the sessions of ada and bob", room)
	}

	sessions, err := a.ListSessions(actx, &roomcastv1.ListSessionsRequest{Subject: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions.GetSessions()) != 1 {
		t.Fatalf("ada's sessions: %v, want one", sessions)
	}
	s := sessions.GetSessions()[0]
	want := []*roomcastv1.SessionRoom{{Room: "chat.a", Offset: 3}, {Room: "chat.b", Offset: 1}}
	if s.GetSessionId() != ada.session || s.GetCredential() != "jwt" || s.GetPeer() == "" || s.GetStartTime() == nil || s.GetExpireTime() == nil ||
		s.GetMessagesDelivered() != 4 || len(s.GetRooms()) != 2 || s.GetRooms()[0].GetOffset() != want[0].Offset || s.GetRooms()[1].GetRoom() != want[1].Room {
		t.Errorf("ada's session: %v, want %s in chat.a at 3 and chat.b at 1, 4 delivered", s, ada.session)
	}
	all, err := a.ListSessions(actx, &roomcastv1.ListSessionsRequest{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.GetSessions()) != 1 || all.GetNextPageToken() == "" {
		t.Errorf("a page of 1 of 2 sessions: %v, want one and a next page", all)
	}

	info, err := a.GetServerInfo(actx, &roomcastv1.GetServerInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetEngine() != "memory" || info.GetVersion() == "" || info.GetGoVersion() == "" || info.GetUptime().AsDuration() <= 0 ||
		info.GetCounters().GetPublished() != 4 || info.GetCounters().GetSessions() != 2 || info.GetCounters().GetRooms() != 2 ||
		info.GetLimits().GetMaxMessageBytes() == 0 || info.GetLimits().GetHistoryTtl().AsDuration() == 0 {
		t.Errorf("server info %v", info)
	}
}

// TestAdminDisconnects checks that a disconnected session's stream ends
// with UNAVAILABLE saying why, by id and by subject, and that the others
// go on.
func TestAdminDisconnects(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	a := dialAdmin(t, addr)
	one := subscribe(t, ctx, c, "lobby")
	two := subscribe(t, ctx, c, "lobby")
	resp, err := a.DisconnectSessions(ctx, &roomcastv1.DisconnectSessionsRequest{Target: &roomcastv1.DisconnectSessionsRequest_SessionId{SessionId: one.session}, Reason: "maintenance"})
	if err != nil || resp.GetDisconnected() != 1 {
		t.Fatalf("DisconnectSessions: %v, %v", resp, err)
	}
	if st := one.expectEnd(codes.Unavailable); !strings.Contains(st.Message(), "disconnected by an administrator: maintenance") {
		t.Errorf("status %q, want it to say an administrator disconnected it, and why", st.Message())
	}
	publishText(t, ctx, c, "lobby", "still here")
	if m := two.next(); m.GetText() != "still here" {
		t.Errorf("the other session got %v", m)
	}
	if _, err := a.DisconnectSessions(ctx, &roomcastv1.DisconnectSessionsRequest{Target: &roomcastv1.DisconnectSessionsRequest_SessionId{SessionId: one.session}}); status.Code(err) != codes.NotFound {
		t.Errorf("disconnecting an ended session: %v, want NOT_FOUND", err)
	}
	if _, err := a.DisconnectSessions(ctx, &roomcastv1.DisconnectSessionsRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("disconnecting nothing named: %v, want INVALID_ARGUMENT", err)
	}
	// Without credentials, every session of this client's address has the
	// same subject.
	list, err := a.ListSessions(ctx, &roomcastv1.ListSessionsRequest{})
	if err != nil || len(list.GetSessions()) != 1 {
		t.Fatalf("ListSessions: %v, %v; want the one session left", list, err)
	}
	subject := list.GetSessions()[0].GetSubject()
	resp, err = a.DisconnectSessions(ctx, &roomcastv1.DisconnectSessionsRequest{Target: &roomcastv1.DisconnectSessionsRequest_Subject{Subject: subject}})
	if err != nil || resp.GetDisconnected() != 1 {
		t.Fatalf("DisconnectSessions of %s: %v, %v", subject, resp, err)
	}
	if st := two.expectEnd(codes.Unavailable); !strings.Contains(st.Message(), "disconnected by an administrator") {
		t.Errorf("status %q", st.Message())
	}
}

// TestAdminClosesARoom checks that closing a room ends the streams in it,
// saying so and naming the offsets sent, drops what it held, and leaves
// the streams of other rooms alone.
func TestAdminClosesARoom(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	a := dialAdmin(t, addr)
	in := subscribe(t, ctx, c, "doomed", "kept")
	out := subscribe(t, ctx, c, "kept")
	publishText(t, ctx, c, "doomed", "one")
	publishText(t, ctx, c, "doomed", "two")
	in.next()
	in.next()
	resp, err := a.CloseRoom(ctx, &roomcastv1.CloseRoomRequest{Room: "doomed"})
	if err != nil || resp.GetSessions() != 1 || resp.GetDroppedMessages() != 2 {
		t.Fatalf("CloseRoom: %v, %v; want 1 session and 2 messages", resp, err)
	}
	st := in.expectEnd(codes.Unavailable)
	if msg := st.Message(); !strings.Contains(msg, `room "doomed" was closed by an administrator`) || !strings.Contains(msg, "doomed=2") {
		t.Errorf("status %q, want it to say the room was closed and its last offset sent", msg)
	}
	publishText(t, ctx, c, "kept", "on")
	if m := out.next(); m.GetText() != "on" {
		t.Errorf("a subscriber of another room got %v", m)
	}
	if _, err := a.GetRoom(ctx, &roomcastv1.GetRoomRequest{Room: "doomed"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetRoom of the closed room: %v, want NOT_FOUND", err)
	}
	h, err := c.History(ctx, &roomcastv1.HistoryRequest{Room: "doomed"})
	if err != nil || len(h.GetMessages()) != 0 {
		t.Errorf("History of the closed room: %v, %v; want nothing", h, err)
	}
	if _, err := a.CloseRoom(ctx, &roomcastv1.CloseRoomRequest{Room: "doomed"}); status.Code(err) != codes.NotFound {
		t.Errorf("closing it again: %v, want NOT_FOUND", err)
	}
}
