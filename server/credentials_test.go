package server_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
)

// Once the authenticator takes new keys, RecheckCredentials ends the
// streams of API keys that were removed (UNAUTHENTICATED) or whose grants
// changed (UNAVAILABLE, to reconnect with them); the others go on.
func TestRecheckCredentialsEndsStreamsOfRevokedKeys(t *testing.T) {
	g := testjwt.Grants(t, "r", "r", "")
	keptKey, kept := apiKey(t, "kept", g)
	goneKey, gone := apiKey(t, "gone", g)
	regrantedKey, regranted := apiKey(t, "regranted", g)
	srv, addr, a := startWithKeys(t, []auth.APIKeyEntry{kept, gone, regranted})
	ctx := testCtx(t)
	c := dial(t, addr)
	jwt := testjwt.Token(t, "svc", time.Now().Add(time.Hour), g)
	subs := map[string]*subscriber{}
	for name, tok := range map[string]string{"kept": keptKey, "gone": goneKey, "regranted": regrantedKey, "jwt": jwt} {
		subs[name] = subscribe(t, bearer(ctx, tok), c, "r")
	}
	if revoked, changed := srv.RecheckCredentials(); revoked != 0 || changed != 0 {
		t.Fatalf("RecheckCredentials before any change ended %d, %d streams", revoked, changed)
	}

	regranted.Grants = testjwt.Grants(t, "r", "r,other", "")
	keys, err := auth.NewAPIKeyStore(kept, regranted)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewJWTVerifier(auth.WithHMACSecret(testjwt.Secret, ""), auth.WithIssuer(testjwt.Issuer), auth.WithAudience("roomcast"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Update(auth.WithJWT(v), auth.WithAPIKeys(keys)); err != nil {
		t.Fatal(err)
	}
	if revoked, changed := srv.RecheckCredentials(); revoked != 1 || changed != 1 {
		t.Errorf("RecheckCredentials ended %d revoked and %d changed streams, want 1 and 1", revoked, changed)
	}
	if st := subs["gone"].expectEnd(codes.Unauthenticated); !strings.Contains(st.Message(), "no longer accepted") || !strings.Contains(st.Message(), gone.ID) {
		t.Errorf("the removed key's stream ended with %q", st.Message())
	}
	subs["regranted"].expectEnd(codes.Unavailable)
	if _, err := c.Publish(bearer(ctx, goneKey), &roomcastv1.PublishRequest{Room: "r"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("a publish with the removed key: %v", err)
	}
	publishTextCtx(t, bearer(ctx, keptKey), c, "r", "still here")
	for _, name := range []string{"kept", "jwt"} {
		if m := subs[name].next(); m.GetText() != "still here" {
			t.Errorf("%s got %v", name, m)
		}
	}
	// A reconnect with the regranted key has its new grants.
	again := subscribe(t, bearer(ctx, regrantedKey), c, "r", "other")
	publishTextCtx(t, bearer(ctx, keptKey), c, "r", "welcome back")
	if m := again.next(); m.GetText() != "welcome back" {
		t.Errorf("got %v", m)
	}
}

// A refresh to a key that is later removed is caught like any other.
func TestRecheckCredentialsSeesRefreshedKeys(t *testing.T) {
	g := testjwt.Grants(t, "r", "r", "")
	firstKey, first := apiKey(t, "svc", g)
	laterKey, later := apiKey(t, "svc", g)
	srv, addr, a := startWithKeys(t, []auth.APIKeyEntry{first, later})
	ctx := testCtx(t)
	sub := subscribe(t, bearer(ctx, firstKey), dial(t, addr), "r")
	if rep := sub.command(refreshReq("r", laterKey)); rep.GetError() != nil {
		t.Fatalf("refresh: %v", rep)
	}
	keys, err := auth.NewAPIKeyStore(first)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Update(auth.WithAPIKeys(keys)); err != nil {
		t.Fatal(err)
	}
	if revoked, _ := srv.RecheckCredentials(); revoked != 1 {
		t.Errorf("RecheckCredentials ended %d streams, want the one refreshed with the removed key", revoked)
	}
	sub.expectEnd(codes.Unauthenticated)
}
