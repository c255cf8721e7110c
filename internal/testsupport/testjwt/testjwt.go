// Package testjwt mints JSON Web Tokens for tests, and runs servers that
// require them. Token's tokens are what Authenticator accepts and
// StartServer requires: HS256 with Secret, from Issuer, to Audience.
package testjwt

import (
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/server"
)

// The issuer and audience that Token's tokens claim and Authenticator
// accepts.
const (
	Issuer   = "test-issuer"
	Audience = "roomcast"
)

// Secret is the HS256 key that signs Token's tokens; a test must not
// modify it.
var Secret = []byte("0123456789abcdef0123456789abcdef-test-only")

// Authenticator returns an authenticator that accepts HS256 tokens signed
// with Secret, from Issuer, to Audience. It has no leeway, so that a token
// is refused as soon as it expires.
func Authenticator(t testing.TB) *auth.Authenticator {
	t.Helper()
	v, err := auth.NewJWTVerifier(auth.WithHMACSecret(Secret, ""), auth.WithIssuer(Issuer), auth.WithAudience(Audience), auth.WithLeeway(0))
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewAuthenticator(auth.WithJWT(v))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// StartServer runs a server that requires tokens Authenticator accepts,
// with opts added, as servertest.Start does, and returns its address.
func StartServer(t testing.TB, opts ...server.Option) string {
	t.Helper()
	_, addr := servertest.Start(t, append([]server.Option{server.WithAuthenticator(Authenticator(t))}, opts...)...)
	return addr
}

// Token returns a token for subject, with grants g, that Authenticator
// accepts until expires.
func Token(t testing.TB, subject string, expires time.Time, g auth.Grants) string {
	t.Helper()
	return Sign(t, jwt.SigningMethodHS256, Secret, Claims(subject, Audience, expires, g))
}

// Claims returns the claims of a token from Issuer for subject, to
// audience, that expires at expires, with grants g.
func Claims(subject, audience string, expires time.Time, g auth.Grants) *auth.Claims {
	return &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{audience},
			ExpiresAt: jwt.NewNumericDate(expires),
		},
		Roomcast: &g,
	}
}

// Sign returns claims signed with method and key, for tokens Token does not
// make: another audience, another key, another algorithm.
func Sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Grants returns grants to publish to, subscribe to and see the presence
// of the rooms that comma-separated patterns select; "" grants none.
func Grants(t testing.TB, publish, subscribe, presence string) auth.Grants {
	t.Helper()
	var g auth.Grants
	for _, p := range []struct {
		into *[]auth.Pattern
		s    string
	}{{&g.Publish, publish}, {&g.Subscribe, subscribe}, {&g.Presence, presence}} {
		if p.s == "" {
			continue
		}
		pats, err := auth.ParsePatterns(strings.Split(p.s, ",")...)
		if err != nil {
			t.Fatal(err)
		}
		*p.into = pats
	}
	return g
}

// PublicKeyPEM returns pub as a "PUBLIC KEY" PEM block, as a verifier's key
// file holds it.
func PublicKeyPEM(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
