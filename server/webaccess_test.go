package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc/codes"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// withToken returns req carrying "Authorization: Bearer tok".
func withToken[T any](req *connect.Request[T], tok string) *connect.Request[T] {
	req.Header().Set("Authorization", "Bearer "+tok)
	return req
}

// Web calls authenticate with a bearer token in the Authorization header
// and are held to its grants, as gRPC calls are: a Watch without one fails
// UNAUTHENTICATED, a room outside its grants gets a PERMISSION_DENIED reply
// while the others go on, and Publish, History and Presence answer as they
// do on gRPC.
func TestWebCallsAreAuthenticatedAndHeldToGrants(t *testing.T) {
	srv, _ := servertest.Start(t, server.WithAuthenticator(testjwt.Authenticator(t)))
	web := startWeb(t, srv)
	ctx := testCtx(t)
	tok := testjwt.Token(t, "browser", time.Now().Add(time.Hour), testjwt.Grants(t, "chat.*", "chat.*", "chat.*"))
	for _, p := range []webProtocol{webProtocols[0], webProtocols[2], webProtocols[4]} {
		t.Run(p.name, func(t *testing.T) {
			c := p.client(t, web)
			if msg := watchWeb(t, ctx, c, "", rooms("chat.a")...).expectEnd(codes.Unauthenticated); msg == "" {
				t.Error("no message")
			}
			if msg := watchWeb(t, ctx, c, "not-a-token", rooms("chat.a")...).expectEnd(codes.Unauthenticated); msg == "" {
				t.Error("no message")
			}
			if _, err := c.Publish(ctx, connect.NewRequest(&roomcastv1.PublishRequest{Room: "chat.a"})); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("publish without a token: %v", err)
			}
			w := watchWeb(t, ctx, c, tok, &roomcastv1.JoinCommand{Room: "billing.x"}, &roomcastv1.JoinCommand{Room: "chat.a", Presence: true})
			replies := w.greeting("billing.x", "chat.a")
			if codes.Code(replies[0].GetError().GetCode()) != codes.PermissionDenied {
				t.Errorf("reply for billing.x: %v, want PERMISSION_DENIED", replies[0])
			}
			if replies[1].GetJoin() == nil {
				t.Fatalf("reply for chat.a: %v", replies[1])
			}
			if _, err := c.Publish(ctx, withToken(connect.NewRequest(&roomcastv1.PublishRequest{Room: "billing.x"}), tok)); connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Errorf("publish outside the grants: %v", err)
			}
			resp, err := c.Publish(ctx, withToken(connect.NewRequest(&roomcastv1.PublishRequest{Room: "chat.a", Payload: &roomcastv1.PublishRequest_Text{Text: "hi"}}), tok))
			if err != nil {
				t.Fatal(err)
			}
			if m := w.next(); m.GetText() != "hi" || m.GetOffset() != resp.Msg.GetOffset() {
				t.Errorf("got %v, want the message published at %d", m, resp.Msg.GetOffset())
			}
			h, err := c.History(ctx, withToken(connect.NewRequest(&roomcastv1.HistoryRequest{Room: "chat.a"}), tok))
			if err != nil || len(h.Msg.GetMessages()) == 0 || h.Msg.GetOffset() != resp.Msg.GetOffset() {
				t.Errorf("history: %v, %v", h, err)
			}
			pr, err := c.Presence(ctx, withToken(connect.NewRequest(&roomcastv1.PresenceRequest{Room: "chat.a"}), tok))
			if err != nil || pr.Msg.GetTotal() == 0 {
				t.Errorf("presence: %v, %v", pr, err)
			}
			if _, err := c.History(ctx, withToken(connect.NewRequest(&roomcastv1.HistoryRequest{Room: "billing.x"}), tok)); connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Errorf("history outside the grants: %v", err)
			}
		})
	}
}

// Watch calls count against the streams a credential may hold open, on
// either port.
func TestWatchCountsAgainstTheCredentialsStreams(t *testing.T) {
	srv, addr := start(t, server.WithMaxStreamsPerCredential(1))
	web := startWeb(t, srv)
	ctx := testCtx(t)
	c := webProtocols[0].client(t, web)
	first := watchWeb(t, ctx, c, "", rooms("a")...)
	first.greeting("a")
	if msg := watchWeb(t, ctx, c, "", rooms("b")...).expectEnd(codes.ResourceExhausted); !strings.Contains(msg, "Subscribe streams open") {
		t.Errorf("second web Watch: %q", msg)
	}
	if msg := watchGRPC(t, ctx, dial(t, addr), rooms("b")...).expectEnd(codes.ResourceExhausted); !strings.Contains(msg, "Subscribe streams open") {
		t.Errorf("gRPC Watch: %q", msg)
	}
}

// A request larger than its RPC's limit is refused with RESOURCE_EXHAUSTED
// before it is decoded, as on gRPC.
func TestWebRequestsAreHeldToTheirSizeLimits(t *testing.T) {
	srv, addr := start(t, server.WithMaxMessageBytes(64<<10), server.WithMaxRoomsPerSession(2))
	web := startWeb(t, srv)
	ctx := testCtx(t)
	c := webProtocols[0].client(t, web)
	big := &roomcastv1.PublishRequest{Room: "a", Payload: &roomcastv1.PublishRequest_Data{Data: make([]byte, 80<<10)}}
	if _, err := c.Publish(ctx, connect.NewRequest(big)); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Errorf("publish of 80 KiB: %v, want RESOURCE_EXHAUSTED", err)
	}
	info := map[string]string{}
	for i := range 16 {
		info[string(rune('a'+i))] = strings.Repeat("v", 60)
	}
	huge := make([]*roomcastv1.JoinCommand, 40)
	for i := range huge {
		huge[i] = &roomcastv1.JoinCommand{Room: strings.Repeat("r", 190) + string(rune('a'+i%26)) + string(rune('a'+i/26)), Info: info}
	}
	for _, w := range []*webWatch{watchWeb(t, ctx, c, "", huge...), watchGRPC(t, ctx, dial(t, addr), huge...)} {
		if msg := w.expectEnd(codes.ResourceExhausted); !strings.Contains(msg, "4096") {
			t.Errorf("a Watch of %d rooms: %q", len(huge), msg)
		}
	}
}

// CORS: a preflight from an allowed origin is answered with the headers a
// browser needs to make the call; from another origin, or with no origin
// allowed, it is not.
func TestWebCORSAllowsOnlyTheConfiguredOrigins(t *testing.T) {
	for _, tc := range []struct {
		name    string
		allowed []string
		origin  string
		ok      bool
	}{
		{"allowed", []string{"https://app.example.com"}, "https://app.example.com", true},
		{"another origin", []string{"https://app.example.com"}, "https://evil.example.com", false},
		{"none allowed", nil, "https://app.example.com", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := start(t)
			var opts []server.WebOption
			if tc.allowed != nil {
				opts = append(opts, server.WithAllowedOrigins(tc.allowed...))
			}
			web := startWeb(t, srv, opts...)
			req, err := http.NewRequestWithContext(testCtx(t), http.MethodOptions, web+"/roomcast.v1.BrokerService/Watch", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Origin", tc.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			// Browsers list them lowercased and sorted, as rs/cors expects.
			req.Header.Set("Access-Control-Request-Headers", "authorization,connect-protocol-version,content-type")
			resp, err := httpClient(t, false).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := resp.Header.Get("Access-Control-Allow-Origin")
			if tc.ok {
				allowHeaders := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
				if got != tc.origin || !strings.Contains(allowHeaders, "authorization") || !strings.Contains(allowHeaders, "connect-protocol-version") {
					t.Errorf("preflight answered with origin %q, headers %q", got, allowHeaders)
				}
			} else if got != "" {
				t.Errorf("preflight from %s allowed: %q", tc.origin, got)
			}
		})
	}
	srv, _ := start(t)
	if _, err := srv.WebHandler(server.WithAllowedOrigins("https://app.example.com/path")); err == nil {
		t.Error("an origin with a path was accepted")
	}
}

// A web Watch whose token expires ends with UNAUTHENTICATED, as a Subscribe
// stream without a refresh does; a Watch has none: its client opens a new
// call with a new token.
func TestWebWatchEndsWhenItsCredentialExpires(t *testing.T) {
	srv, _ := servertest.Start(t, server.WithAuthenticator(testjwt.Authenticator(t)))
	web := startWeb(t, srv)
	ctx := testCtx(t)
	soon := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	w := watchWeb(t, ctx, webProtocols[0].client(t, web), testjwt.Token(t, "s", soon, testjwt.Grants(t, "", "r", "")), rooms("r")...)
	w.greeting("r")
	if msg := w.expectEnd(codes.Unauthenticated); !strings.Contains(msg, "expired") {
		t.Errorf("message %q", msg)
	}
	if time.Now().Before(soon) {
		t.Error("the call ended before its credential expired")
	}
}
