package server_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
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
// well as the test's JWTs. It returns the server's address and
// authenticator.
func startWithKeys(t testing.TB, entries []auth.APIKeyEntry, opts ...server.Option) (string, *auth.Authenticator) {
	t.Helper()
	v, err := auth.NewJWTVerifier(auth.WithHMACSecret(testSecret, ""), auth.WithIssuer("test-issuer"), auth.WithAudience("roomcast"), auth.WithLeeway(0))
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
	_, addr := start(t, append([]server.Option{server.WithAuthenticator(a)}, opts...)...)
	return addr, a
}

func refreshReq(id, token string) *roomcastv1.SubscribeRequest {
	return &roomcastv1.SubscribeRequest{Id: id, Command: &roomcastv1.SubscribeRequest_Refresh{Refresh: &roomcastv1.RefreshCommand{Token: token}}}
}

// A stream opened with a JWT that is refreshed with an API key of the same
// subject would never expire; one opened with an API key and refreshed with
// a JWT would change what revokes it. A refresh keeps the credential's kind.
func TestRefreshKeepsTheCredentialKind(t *testing.T) {
	g := grants(t, "r", "r", "")
	key, entry := apiKey(t, "svc", g)
	addr, _ := startWithKeys(t, []auth.APIKeyEntry{entry})
	ctx := testCtx(t)
	c := dial(t, addr)
	jwt := token(t, "svc", "roomcast", time.Now().Add(time.Hour), g)

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
