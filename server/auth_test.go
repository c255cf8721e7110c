package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

func bearer(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

func TestCredentialsAreRequiredAndChecked(t *testing.T) {
	addr := testjwt.StartServer(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	future := time.Now().Add(time.Hour)
	good := testjwt.Token(t, "svc", future, testjwt.Grants(t, "chat.*", "chat.>", ""))
	for _, tc := range []struct {
		name string
		ctx  context.Context
		room string
		code codes.Code
	}{
		{"no credential", ctx, "chat.a", codes.Unauthenticated},
		{"malformed token", bearer(ctx, "not.a.token"), "chat.a", codes.Unauthenticated},
		{"expired token", bearer(ctx, testjwt.Token(t, "svc", time.Now().Add(-time.Minute), testjwt.Grants(t, "chat.*", "", ""))), "chat.a", codes.Unauthenticated},
		{"another audience", bearer(ctx, testjwt.Sign(t, jwt.SigningMethodHS256, testjwt.Secret, testjwt.Claims("svc", "elsewhere", future, testjwt.Grants(t, "chat.*", "", "")))), "chat.a", codes.Unauthenticated},
		{"outside the grants", bearer(ctx, good), "billing.a", codes.PermissionDenied},
		{"one segment too deep", bearer(ctx, good), "chat.a.b", codes.PermissionDenied},
		{"granted", bearer(ctx, good), "chat.a", codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Publish(tc.ctx, &roomcastv1.PublishRequest{Room: tc.room})
			if status.Code(err) != tc.code {
				t.Errorf("publish: %v, want %v", err, tc.code)
			}
		})
	}
	stream, err := c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unauthenticated {
		t.Errorf("subscribe without a credential: %v", err)
	}
	h, err := healthpb.NewHealthClient(servertest.Dial(t, addr)).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health without a credential: %v, %v", h, err)
	}
}

func TestGrantsApplyPerCommandAndTheStreamStaysUp(t *testing.T) {
	addr := testjwt.StartServer(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	tok := testjwt.Token(t, "reader", time.Now().Add(time.Hour), testjwt.Grants(t, "", "news.>", "news.lobby"))
	sub := subscribe(t, bearer(ctx, tok), c, "news.eu")
	for _, tc := range []struct {
		name string
		join *roomcastv1.JoinCommand
		code codes.Code
	}{
		{"outside subscribe grants", &roomcastv1.JoinCommand{Room: "sport"}, codes.PermissionDenied},
		{"presence without the grant", &roomcastv1.JoinCommand{Room: "news.us", Presence: true}, codes.PermissionDenied},
		{"presence events without the grant", &roomcastv1.JoinCommand{Room: "news.us", PresenceEvents: true}, codes.PermissionDenied},
		{"presence with the grant", &roomcastv1.JoinCommand{Room: "news.lobby", Presence: true}, codes.OK},
	} {
		rep := sub.command(&roomcastv1.SubscribeRequest{Id: tc.name, Command: &roomcastv1.SubscribeRequest_Join{Join: tc.join}})
		if codes.Code(rep.GetError().GetCode()) != tc.code {
			t.Errorf("%s: reply %v, want %v", tc.name, rep, tc.code)
		}
	}
	if _, err := c.History(bearer(ctx, tok), &roomcastv1.HistoryRequest{Room: "sport"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("history outside the grants: %v", err)
	}
	if _, err := c.Presence(bearer(ctx, tok), &roomcastv1.PresenceRequest{Room: "news.eu"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("presence outside the grants: %v", err)
	}
	// The reader may not publish, and may not borrow its session id to
	// another subject's publish either.
	writer := testjwt.Token(t, "writer", time.Now().Add(time.Hour), testjwt.Grants(t, "news.>", "", ""))
	if _, err := c.Publish(bearer(ctx, tok), &roomcastv1.PublishRequest{Room: "news.eu"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("publish without the grant: %v", err)
	}
	if _, err := c.Publish(bearer(ctx, writer), &roomcastv1.PublishRequest{Room: "news.eu", SessionId: sub.session}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("publish as another subject's session: %v", err)
	}
	publishTextCtx(t, bearer(ctx, writer), c, "news.eu", "still up")
	if m := sub.next(); m.GetText() != "still up" {
		t.Errorf("got %v", m)
	}
}

func publishTextCtx(t testing.TB, ctx context.Context, c roomcastv1.BrokerServiceClient, room, text string) {
	t.Helper()
	if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: text}}); err != nil {
		t.Fatal(err)
	}
}

func TestPublishRateIsPerCredentialWithRetryInfo(t *testing.T) {
	addr := testjwt.StartServer(t, server.WithPublishRate(0.001, 3))
	ctx := testCtx(t)
	c := dial(t, addr)
	g := testjwt.Grants(t, "r", "", "")
	a, b := bearer(ctx, testjwt.Token(t, "a", time.Now().Add(time.Hour), g)), bearer(ctx, testjwt.Token(t, "b", time.Now().Add(time.Hour), g))
	for range 3 {
		publishTextCtx(t, a, c, "r", "x")
	}
	_, err := c.Publish(a, &roomcastv1.PublishRequest{Room: "r"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("fourth publish: %v", err)
	}
	if retry := retryInfo(t, err); retry == nil || retry.GetRetryDelay().AsDuration() <= 0 {
		t.Errorf("no retry delay in %v", status.Convert(err).Details())
	}
	publishTextCtx(t, b, c, "r", "another credential has its own bucket")
}

// A token that expires ends its stream with UNAUTHENTICATED unless a
// refresh for the same subject came first.
func TestExpiringCredentialsEndStreamsUnlessRefreshed(t *testing.T) {
	addr := testjwt.StartServer(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	g := testjwt.Grants(t, "r", "r", "")
	soon := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)

	lapsing := subscribe(t, bearer(ctx, testjwt.Token(t, "s", soon, g)), c, "r")
	refreshed := subscribe(t, bearer(ctx, testjwt.Token(t, "s", soon, g)), c, "r")
	rep := refreshed.command(&roomcastv1.SubscribeRequest{Id: "other", Command: &roomcastv1.SubscribeRequest_Refresh{Refresh: &roomcastv1.RefreshCommand{
		Token: testjwt.Token(t, "someone-else", time.Now().Add(time.Hour), g)}}})
	if codes.Code(rep.GetError().GetCode()) != codes.PermissionDenied {
		t.Errorf("refresh for another subject: %v", rep)
	}
	later := time.Now().Add(time.Hour).Truncate(time.Second)
	rep = refreshed.command(&roomcastv1.SubscribeRequest{Id: "ok", Command: &roomcastv1.SubscribeRequest_Refresh{Refresh: &roomcastv1.RefreshCommand{
		Token: testjwt.Token(t, "s", later, g)}}})
	if rep.GetError() != nil || !rep.GetRefresh().GetExpireTime().AsTime().Equal(later) {
		t.Fatalf("refresh: %v", rep)
	}

	st := lapsing.expectEnd(codes.Unauthenticated)
	if !strings.Contains(st.Message(), "expired") {
		t.Errorf("status %q", st.Message())
	}
	if time.Now().Before(soon) {
		t.Errorf("stream ended before its credential expired")
	}
	publishTextCtx(t, bearer(ctx, testjwt.Token(t, "p", later, g)), c, "r", "after expiry")
	if m := refreshed.next(); m.GetText() != "after expiry" {
		t.Errorf("refreshed stream got %v", m)
	}
}

func TestStreamAndCommandLimits(t *testing.T) {
	_, addr := start(t, server.WithMaxStreams(2), server.WithCommandRate(0.001, 2))
	ctx := testCtx(t)
	c := dial(t, addr)
	first := subscribe(t, ctx, c, "a", "b") // two commands: the whole burst
	subscribe(t, ctx, c)
	third, err := c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := third.Recv(); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("third stream: %v", err)
	}
	rep := first.command(joinReq("c", "c", nil))
	if codes.Code(rep.GetError().GetCode()) != codes.ResourceExhausted || !strings.Contains(rep.GetError().GetMessage(), "commands per second") {
		t.Errorf("command past the rate: %v", rep)
	}
}
