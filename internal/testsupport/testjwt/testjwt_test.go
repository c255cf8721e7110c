package testjwt_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestServerTakesTokens(t *testing.T) {
	addr := testjwt.StartServer(t)
	c := roomcastv1.NewBrokerServiceClient(servertest.Dial(t, addr))
	ctx := servertest.Context(t)
	hour := time.Now().Add(time.Hour)
	g := testjwt.Grants(t, "a,b.*", "", "")
	for _, tc := range []struct {
		name  string
		token string
		room  string
		code  codes.Code
	}{
		{"granted", testjwt.Token(t, "s", hour, g), "a", codes.OK},
		{"the second pattern", testjwt.Token(t, "s", hour, g), "b.x", codes.OK},
		{"not granted", testjwt.Token(t, "s", hour, g), "c", codes.PermissionDenied},
		{"expired", testjwt.Token(t, "s", time.Now().Add(-time.Second), g), "a", codes.Unauthenticated},
		{"another audience", testjwt.Sign(t, jwt.SigningMethodHS256, testjwt.Secret, testjwt.Claims("s", "elsewhere", hour, g)), "a", codes.Unauthenticated},
		{"another key", testjwt.Sign(t, jwt.SigningMethodHS256, []byte("another secret, long enough for HS256"), testjwt.Claims("s", testjwt.Audience, hour, g)), "a", codes.Unauthenticated},
	} {
		callCtx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tc.token)
		if _, err := c.Publish(callCtx, &roomcastv1.PublishRequest{Room: tc.room}); status.Code(err) != tc.code {
			t.Errorf("%s: publish to %s: %v, want %v", tc.name, tc.room, err, tc.code)
		}
	}
}

func TestGrants(t *testing.T) {
	g := testjwt.Grants(t, "a,b", "", "c.>")
	if len(g.Publish) != 2 || g.Subscribe != nil || len(g.Presence) != 1 || g.Presence[0].String() != "c.>" {
		t.Errorf("Grants = %+v", g)
	}
}

func TestPublicKeyPEM(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(testjwt.PublicKeyPEM(t, &key.PublicKey))
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("not a PUBLIC KEY block: %v", block)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil || !key.PublicKey.Equal(pub) {
		t.Errorf("the block holds %v, %v; want the key", pub, err)
	}
}
