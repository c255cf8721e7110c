package auth_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomcast/roomcast/auth"
)

func TestAuthenticate(t *testing.T) {
	k := keys(t)
	secret, entry := newKey(t, "svc", `{"publish": ["svc.>"]}`)
	store, err := auth.NewAPIKeyStore(entry)
	if err != nil {
		t.Fatal(err)
	}
	full, err := auth.NewAuthenticator(auth.WithJWT(verifier(t)), auth.WithAPIKeys(store))
	if err != nil {
		t.Fatal(err)
	}
	jwtOnly, err := auth.NewAuthenticator(auth.WithJWT(verifier(t)))
	if err != nil {
		t.Fatal(err)
	}
	keysOnly, err := auth.NewAuthenticator(auth.WithAPIKeys(store))
	if err != nil {
		t.Fatal(err)
	}
	anonGrants := auth.Grants{Subscribe: patterns(t, "public.>")}
	anon, err := auth.NewAuthenticator(auth.WithJWT(verifier(t)), auth.WithAnonymous(anonGrants))
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, jwt.SigningMethodES256, k.ec, goodClaims(t), nil)

	for _, tc := range []struct {
		name    string
		a       *auth.Authenticator
		header  string
		subject string
		want    error
	}{
		{"jwt", full, "Bearer " + tok, "alice", nil},
		{"lowercase scheme", full, "bearer " + tok, "alice", nil},
		{"extra spaces", full, "Bearer   " + tok + "  ", "alice", nil},
		{"api key", full, "Bearer " + secret, "svc", nil},
		{"missing", full, "", "", auth.ErrMissingCredentials},
		{"anonymous", anon, "", auth.AnonymousSubject, nil},
		{"bad token never falls back to anonymous", anon, "Bearer x.y.z", "", auth.ErrMalformedCredentials},
		{"anonymous with a token", anon, "Bearer " + tok, "alice", nil},
		{"basic", full, "Basic dXNlcjpwYXNz", "", auth.ErrMalformedCredentials},
		{"no scheme", full, tok, "", auth.ErrMalformedCredentials},
		{"scheme only", full, "Bearer", "", auth.ErrMalformedCredentials},
		{"empty token", full, "Bearer ", "", auth.ErrMalformedCredentials},
		{"blank", full, " ", "", auth.ErrMalformedCredentials},
		{"too long", full, "Bearer " + strings.Repeat("a", auth.MaxTokenLen+1), "", auth.ErrMalformedCredentials},
		{"api key refused", jwtOnly, "Bearer " + secret, "", auth.ErrInvalidAPIKey},
		{"jwt refused", keysOnly, "Bearer " + tok, "", auth.ErrMalformedCredentials},
		{"expired", full, "Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, expired(t), nil), "", auth.ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.a.Authenticate(tc.header)
			if tc.want != nil {
				if !errors.Is(err, tc.want) || id != nil || !utf8.ValidString(err.Error()) {
					t.Fatalf("Authenticate = %+v, %v; want %v", id, err, tc.want)
				}
				return
			}
			if err != nil || id.Subject != tc.subject {
				t.Fatalf("Authenticate = %+v, %v; want subject %q", id, err, tc.subject)
			}
		})
	}
	id, err := anon.Authenticate("")
	if err != nil || id.Method != auth.MethodAnonymous || !id.Allows(auth.Subscribe, "public.news") || id.Allows(auth.Publish, "public.news") {
		t.Fatalf("anonymous identity %+v, %v", id, err)
	}
	if _, err := auth.NewAuthenticator(); err == nil {
		t.Fatal("NewAuthenticator() accepted nothing without an error")
	}
}

// expired returns claims that expired a day ago.
func expired(t *testing.T) *auth.Claims {
	c := goodClaims(t)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(-24 * time.Hour))
	return c
}
