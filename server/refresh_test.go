package server_test

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// apiKey makes an API key for subject with grants g, and its entry.
func apiKey(t testing.TB, subject string, g auth.Grants) (string, auth.APIKeyEntry) {
	t.Helper()
	secret, entry, err := auth.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	entry.Subject, entry.Grants = subject, g
	return secret, entry
}

// startWithKeys is startAuthenticated accepting the API keys of entries as
// well as the test's JWTs. It returns the server, its address and its
// authenticator.
func startWithKeys(t testing.TB, entries []auth.APIKeyEntry, opts ...server.Option) (*server.Server, string, *auth.Authenticator) {
	t.Helper()
	v, err := auth.NewJWTVerifier(auth.WithHMACSecret(testjwt.Secret, ""), auth.WithIssuer(testjwt.Issuer), auth.WithAudience("roomcast"), auth.WithLeeway(0))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.NewAPIKeyStore(entries...)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewAuthenticator(auth.WithJWT(v), auth.WithAPIKeys(keys))
	if err != nil {
		t.Fatal(err)
	}
	srv, addr := start(t, append([]server.Option{server.WithAuthenticator(a)}, opts...)...)
	return srv, addr, a
}

func refreshReq(id, token string) *roomcastv1.SubscribeRequest {
	return &roomcastv1.SubscribeRequest{Id: id, Command: &roomcastv1.SubscribeRequest_Refresh{Refresh: &roomcastv1.RefreshCommand{Token: token}}}
}

// A stream opened with a JWT that is refreshed with an API key of the same
// subject would never expire; one opened with an API key and refreshed with
// a JWT would change what revokes it. A refresh keeps the credential's kind.
func TestRefreshKeepsTheCredentialKind(t *testing.T) {
	g := testjwt.Grants(t, "r", "r", "")
	key, entry := apiKey(t, "svc", g)
	_, addr, _ := startWithKeys(t, []auth.APIKeyEntry{entry})
	ctx := testCtx(t)
	c := dial(t, addr)
	jwt := testjwt.Token(t, "svc", time.Now().Add(time.Hour), g)

	for _, tc := range []struct{ name, open, refresh string }{
		{"JWT stream, API key refresh", jwt, key},
		{"API key stream, JWT refresh", key, jwt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := subscribe(t, bearer(ctx, tc.open), c, "r")
			rep := sub.command(refreshReq("kind", tc.refresh))
			if codes.Code(rep.GetError().GetCode()) != codes.PermissionDenied {
				t.Errorf("refresh with another kind of credential: %v, want PERMISSION_DENIED", rep)
			}
			rep = sub.command(refreshReq("same", tc.open))
			if rep.GetError() != nil {
				t.Errorf("refresh with the same kind: %v", rep)
			}
		})
	}
}

// A refresh whose credential no longer allows some of the stream's rooms
// leaves them, says which in the reply, and delivers nothing of them after.
func TestRefreshLeavesRoomsTheNewCredentialDoesNotAllow(t *testing.T) {
	addr := testjwt.StartServer(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	later := time.Now().Add(time.Hour)
	wide := testjwt.Grants(t, "", "news.>,sport.>,kept.>,watched.>", "watched.>,kept.>")
	sub := subscribe(t, bearer(ctx, testjwt.Token(t, "reader", later, wide)), c, "news.eu", "sport.eu")
	for _, j := range []*roomcastv1.JoinCommand{
		{Room: "watched.a", Presence: true},       // loses the presence grant
		{Room: "watched.b", PresenceEvents: true}, // loses it too
		{Room: "kept.a", Presence: true},          // keeps both grants
	} {
		if rep := sub.command(&roomcastv1.SubscribeRequest{Id: j.GetRoom(), Command: &roomcastv1.SubscribeRequest_Join{Join: j}}); rep.GetError() != nil {
			t.Fatalf("join %s: %v", j.GetRoom(), rep)
		}
	}

	narrow := testjwt.Grants(t, "", "news.>,watched.>,kept.>", "kept.>")
	rep := sub.command(refreshReq("narrow", testjwt.Token(t, "reader", later, narrow)))
	if rep.GetError() != nil {
		t.Fatalf("refresh: %v", rep)
	}
	left := rep.GetRefresh().GetLeftRooms()
	slices.Sort(left)
	if want := []string{"sport.eu", "watched.a", "watched.b"}; !slices.Equal(left, want) {
		t.Errorf("left_rooms %q, want %q", left, want)
	}

	// Nothing more of the rooms left: the next message is news.eu's.
	writer := bearer(ctx, testjwt.Token(t, "writer", later, testjwt.Grants(t, ">", "", ">")))
	for _, room := range []string{"sport.eu", "watched.a", "watched.b", "news.eu"} {
		publishTextCtx(t, writer, c, room, "to "+room)
	}
	if m := sub.next(); m.GetRoom() != "news.eu" {
		t.Errorf("after the refresh got %v, want news.eu's message", m)
	}
	// The room left with its presence no longer lists the stream.
	p, err := c.Presence(writer, &roomcastv1.PresenceRequest{Room: "watched.a"})
	if err != nil || p.GetTotal() != 0 {
		t.Errorf("presence of a room left on refresh: %v, %v", p, err)
	}
	if p, err := c.Presence(writer, &roomcastv1.PresenceRequest{Room: "kept.a"}); err != nil || p.GetTotal() != 1 {
		t.Errorf("presence of a room kept: %v, %v", p, err)
	}
	// A refresh that narrows nothing leaves nothing.
	rep = sub.command(refreshReq("same", testjwt.Token(t, "reader", later, narrow)))
	if rep.GetError() != nil || len(rep.GetRefresh().GetLeftRooms()) != 0 {
		t.Errorf("second refresh: %v", rep)
	}
}
