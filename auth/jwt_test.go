package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomcast/roomcast/auth"
)

// algorithm is one accepted algorithm with its signing key and another key
// of the same type that the verifier does not trust.
type algorithm struct {
	method     jwt.SigningMethod
	key, other any
}

func algorithms(t *testing.T) []algorithm {
	k := keys(t)
	return []algorithm{
		{jwt.SigningMethodHS256, k.hmac, k.otherHMAC},
		{jwt.SigningMethodRS256, k.rsa, k.otherRSA},
		{jwt.SigningMethodES256, k.ec, k.otherEC},
		{jwt.SigningMethodEdDSA, k.ed, k.otherEd},
	}
}

// checkErr fails unless err wraps want (nil: no error) with a message fit
// for a client.
func checkErr(t *testing.T, err, want error, mention string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %v; want %v", err, want)
	}
	if msg := err.Error(); !utf8.ValidString(msg) || !strings.Contains(msg, mention) {
		t.Fatalf("error %q does not mention %q", msg, mention)
	}
}

func TestJWTAlgorithms(t *testing.T) {
	v := verifier(t)
	type claimsEdit func(*auth.Claims)
	cases := []struct {
		name    string
		edit    claimsEdit
		other   bool // sign with the untrusted key
		want    error
		mention string
	}{
		{name: "ok"},
		{name: "expired", edit: func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour)) }, want: auth.ErrExpired, mention: "token expired at 2026-03-01T11:00:00Z"},
		{name: "expired within leeway", edit: func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-10 * time.Second)) }},
		{name: "no exp", edit: func(c *auth.Claims) { c.ExpiresAt = nil }, want: auth.ErrInvalidClaims, mention: "no exp claim"},
		{name: "nbf in the future", edit: func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) }, want: auth.ErrNotYetValid, mention: "not valid before 2026-03-01T13:00:00Z"},
		{name: "nbf within leeway", edit: func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(20 * time.Second)) }},
		{name: "iat in the future", edit: func(c *auth.Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) }, want: auth.ErrNotYetValid, mention: "in the future"},
		{name: "wrong aud", edit: func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"billing"} }, want: auth.ErrWrongAudience, mention: `audience "billing" is not accepted`},
		{name: "one of several aud", edit: func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"billing", testAudience} }},
		{name: "no aud", edit: func(c *auth.Claims) { c.Audience = nil }, want: auth.ErrWrongAudience, mention: "no aud claim"},
		{name: "wrong iss", edit: func(c *auth.Claims) { c.Issuer = "https://evil.test" }, want: auth.ErrWrongIssuer, mention: `issuer "https://evil.test" is not accepted`},
		{name: "no iss", edit: func(c *auth.Claims) { c.Issuer = "" }, want: auth.ErrWrongIssuer, mention: "no iss claim"},
		{name: "no sub", edit: func(c *auth.Claims) { c.Subject = "" }, want: auth.ErrInvalidClaims, mention: "no sub claim"},
		{name: "no roomcast claim", edit: func(c *auth.Claims) { c.Roomcast = nil }},
		{name: "bad signature", other: true, want: auth.ErrInvalidSignature, mention: "signature does not verify"},
	}
	for _, a := range algorithms(t) {
		for _, tc := range cases {
			t.Run(a.method.Alg()+"/"+tc.name, func(t *testing.T) {
				c := goodClaims(t)
				if tc.edit != nil {
					tc.edit(c)
				}
				key := a.key
				if tc.other {
					key = a.other
				}
				id, err := v.Verify(sign(t, a.method, key, c, nil))
				checkErr(t, err, tc.want, tc.mention)
				if err != nil {
					return
				}
				if id.Subject != "alice" || id.Method != auth.MethodJWT || !id.Expiry.Equal(c.ExpiresAt.Time) {
					t.Fatalf("identity %+v", id)
				}
				if want := c.Roomcast != nil; id.Allows(auth.Publish, "chat.lobby") != want || id.Allows(auth.Publish, "chat.a.b") || id.Allows(auth.Subscribe, "chat.a.b") != want {
					t.Fatalf("grants %+v", id.Grants)
				}
			})
		}
	}
}

func TestJWTTampered(t *testing.T) {
	v := verifier(t)
	for _, a := range algorithms(t) {
		tok := sign(t, a.method, a.key, goodClaims(t), nil)
		parts := strings.Split(tok, ".")
		c := goodClaims(t)
		c.Roomcast.Admin = true
		forged := strings.Split(sign(t, a.method, a.other, c, nil), ".")
		_, err := v.Verify(parts[0] + "." + forged[1] + "." + parts[2])
		checkErr(t, err, auth.ErrInvalidSignature, "signature does not verify")
	}
}

func TestJWTBadRoomcastClaim(t *testing.T) {
	v := verifier(t)
	claims := jwt.MapClaims{
		"iss": testIssuer, "aud": testAudience, "sub": "alice", "exp": now.Add(time.Hour).Unix(),
		"roomcast": map[string]any{"publish": []string{"chat.*x"}},
	}
	_, err := v.Verify(sign(t, jwt.SigningMethodHS256, keys(t).hmac, claims, nil))
	checkErr(t, err, auth.ErrInvalidClaims, `roomcast claim: invalid room pattern "chat.*x"`)

	claims["roomcast"] = map[string]any{"publsh": []string{"chat.*"}}
	_, err = v.Verify(sign(t, jwt.SigningMethodHS256, keys(t).hmac, claims, nil))
	checkErr(t, err, auth.ErrInvalidClaims, `unknown field "publsh"`)
}

// TestJWTAlgorithmConfusion signs HS256 tokens with the bytes of the
// verifier's public keys, as an attacker who knows them would.
func TestJWTAlgorithmConfusion(t *testing.T) {
	k := keys(t)
	pems := map[string][]byte{
		"rsa": publicPEM(t, &k.rsa.PublicKey),
		"ec":  publicPEM(t, &k.ec.PublicKey),
		"ed":  publicPEM(t, k.ed.Public()),
	}
	publicOnly, err := auth.NewJWTVerifier(
		auth.WithPublicKey(&k.rsa.PublicKey, ""), auth.WithPublicKey(&k.ec.PublicKey, ""), auth.WithPublicKey(k.ed.Public(), ""),
		auth.WithIssuer(testIssuer), auth.WithAudience(testAudience), auth.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	withHMAC := verifier(t)
	for name, pemBytes := range pems {
		for _, secret := range [][]byte{pemBytes, []byte(strings.TrimSpace(string(pemBytes)))} {
			tok := sign(t, jwt.SigningMethodHS256, secret, goodClaims(t), nil)
			_, err := publicOnly.Verify(tok)
			checkErr(t, err, auth.ErrInvalidSignature, `token algorithm "HS256" is not accepted (accepted: ES256, EdDSA, RS256)`)
			_, err = withHMAC.Verify(tok)
			checkErr(t, err, auth.ErrInvalidSignature, "signature does not verify")
			if name == "rsa" { // also with the kid of no key and of another key type
				_, err = withHMAC.Verify(sign(t, jwt.SigningMethodHS256, secret, goodClaims(t), map[string]any{"kid": "rsa-1"}))
				checkErr(t, err, auth.ErrInvalidSignature, "signature does not verify")
			}
		}
	}
	// An RS256 token claiming an HMAC-only verifier's key.
	hmacOnly, err := auth.NewJWTVerifier(auth.WithHMACSecret(k.hmac, "h1"), auth.WithIssuer(testIssuer), auth.WithAudience(testAudience), auth.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	_, err = hmacOnly.Verify(sign(t, jwt.SigningMethodRS256, k.rsa, goodClaims(t), map[string]any{"kid": "h1"}))
	checkErr(t, err, auth.ErrInvalidSignature, `"RS256" is not accepted`)
}

func TestJWTRefusedAlgorithms(t *testing.T) {
	v := verifier(t)
	k := keys(t)
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, goodClaims(t), nil)
	_, err := v.Verify(none)
	checkErr(t, err, auth.ErrInvalidSignature, `token algorithm "none" is not accepted`)

	payload := strings.Split(none, ".")[1]
	for _, alg := range []string{"none", "None", "NONE", "nOnE", "HS512", "RS512", "PS256", "ES384", "ES256K", "Ed25519"} {
		hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"` + alg + `","typ":"JWT"}`))
		for _, sig := range []string{"", "c2ln"} {
			_, err := v.Verify(hdr + "." + payload + "." + sig)
			checkErr(t, err, auth.ErrInvalidSignature, "is not accepted")
		}
	}
	for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS384, jwt.SigningMethodHS512} {
		_, err := v.Verify(sign(t, m, k.hmac, goodClaims(t), nil))
		checkErr(t, err, auth.ErrInvalidSignature, "is not accepted")
	}
	_, err = v.Verify(sign(t, jwt.SigningMethodPS256, k.rsa, goodClaims(t), nil))
	checkErr(t, err, auth.ErrInvalidSignature, `"PS256" is not accepted`)
}

func TestJWTMalformed(t *testing.T) {
	v := verifier(t)
	good := sign(t, jwt.SigningMethodHS256, keys(t).hmac, goodClaims(t), nil)
	parts := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	for _, tok := range []string{
		"", "abc", "a.b", "a.b.c", "..", "....", "eyJ.eyJ.", "\xff\xfe.\x00.x",
		parts[0] + "." + parts[1],
		parts[0] + "." + parts[1] + "." + parts[2] + ".x",
		parts[0] + "=." + parts[1] + "." + parts[2],
		b64([]byte(`not json`)) + "." + parts[1] + "." + parts[2],
		b64([]byte(`{"typ":"JWT"}`)) + "." + parts[1] + "." + parts[2],
		b64([]byte(`{"alg":7}`)) + "." + parts[1] + "." + parts[2],
		b64([]byte(`{"alg":"HS256","kid":7}`)) + "." + parts[1] + "." + parts[2],
		b64([]byte(`{"alg":"HS256","crit":["exp"]}`)) + "." + parts[1] + "." + parts[2],
		parts[0] + "." + b64([]byte(`not json`)) + "." + parts[2],
		parts[0] + "." + b64([]byte(`{"exp":"tomorrow"}`)) + "." + parts[2],
		parts[0] + ".!!!." + parts[2],
		strings.Repeat("a", auth.MaxTokenLen+1),
	} {
		_, err := v.Verify(tok)
		if !errors.Is(err, auth.ErrMalformedCredentials) || !utf8.ValidString(err.Error()) {
			t.Errorf("Verify(%.40q) = %v; want ErrMalformedCredentials", tok, err)
		}
	}
}

func TestJWTKid(t *testing.T) {
	k := keys(t)
	v, err := auth.NewJWTVerifier(
		auth.WithHMACSecret(k.hmac, "h1"),
		auth.WithHMACSecret(k.otherHMAC, ""),
		auth.WithPublicKey(&k.rsa.PublicKey, "r1"),
		auth.WithIssuer(testIssuer), auth.WithAudience("other", testAudience), auth.WithClock(clock), auth.WithLeeway(0))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		method  jwt.SigningMethod
		key     any
		kid     any
		want    error
		mention string
	}{
		{"kid selects h1", jwt.SigningMethodHS256, k.hmac, "h1", nil, ""},
		{"no kid tries every HS256 key", jwt.SigningMethodHS256, k.hmac, nil, nil, ""},
		{"no kid, other key", jwt.SigningMethodHS256, k.otherHMAC, nil, nil, ""},
		{"unknown kid falls back to keys without a kid", jwt.SigningMethodHS256, k.otherHMAC, "zz", nil, ""},
		{"unknown kid does not reach h1", jwt.SigningMethodHS256, k.hmac, "zz", auth.ErrInvalidSignature, "does not verify"},
		{"kid h1 with the other secret", jwt.SigningMethodHS256, k.otherHMAC, "h1", auth.ErrInvalidSignature, "does not verify"},
		{"kid of an RSA key on an HS256 token", jwt.SigningMethodHS256, k.hmac, "r1", auth.ErrInvalidSignature, `key id "r1" names no HS256 key`},
		{"kid of an HMAC key on an RS256 token", jwt.SigningMethodRS256, k.rsa, "h1", auth.ErrInvalidSignature, `key id "h1" names no RS256 key`},
		{"RS256 without kid", jwt.SigningMethodRS256, k.rsa, nil, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(sign(t, tc.method, tc.key, goodClaims(t), map[string]any{"kid": tc.kid}))
			checkErr(t, err, tc.want, tc.mention)
			if err == nil && id.KeyID != orEmpty(tc.kid) {
				t.Fatalf("KeyID %q", id.KeyID)
			}
		})
	}
	// Leeway 0: a token expired a second ago is refused.
	c := goodClaims(t)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Second))
	_, err = v.Verify(sign(t, jwt.SigningMethodHS256, k.hmac, c, nil))
	checkErr(t, err, auth.ErrExpired, "expired")
}

func orEmpty(v any) string {
	s, _ := v.(string)
	return s
}

func TestNewJWTVerifierErrors(t *testing.T) {
	k := keys(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := publicPEM(t, &k.rsa.PublicKey)
	both := append(append([]byte(nil), rsaPEM...), publicPEM(t, &k.ec.PublicKey)...)
	req := []auth.JWTOption{auth.WithIssuer(testIssuer), auth.WithAudience(testAudience)}
	for _, tc := range []struct {
		name    string
		opts    []auth.JWTOption
		mention string
	}{
		{"no key", req, "at least one key"},
		{"no issuer", []auth.JWTOption{auth.WithHMACSecret(k.hmac, ""), auth.WithAudience(testAudience)}, "expected issuer"},
		{"no audience", []auth.JWTOption{auth.WithHMACSecret(k.hmac, ""), auth.WithIssuer(testIssuer)}, "audiences"},
		{"empty audience", []auth.JWTOption{auth.WithHMACSecret(k.hmac, ""), auth.WithIssuer(testIssuer), auth.WithAudience("")}, "audiences"},
		{"negative leeway", append(req, auth.WithHMACSecret(k.hmac, ""), auth.WithLeeway(-time.Second)), "leeway"},
		{"nil clock", append(req, auth.WithHMACSecret(k.hmac, ""), auth.WithClock(nil)), "clock"},
		{"short secret", append(req, auth.WithHMACSecret([]byte("short"), "")), "HMAC secret is 5 bytes; HS256 needs at least 32"},
		{"short secret file", append(req, auth.WithHMACSecretFile(writeFile(t, "s", []byte("short\n")), "")), "HMAC secret is 5 bytes"},
		{"missing file", append(req, auth.WithPublicKeyFile("/nonexistent/key.pem", "")), "no such file"},
		{"P-384", append(req, auth.WithPublicKey(&p384.PublicKey, "")), "not on curve P-256"},
		{"P-384 file", append(req, auth.WithPublicKeyFile(writeFile(t, "p384.pem", publicPEM(t, &p384.PublicKey)), "")), "not on curve P-256"},
		{"unsupported key type", append(req, auth.WithPublicKey("not a key", "")), "unsupported public key type string"},
		{"private key PEM", append(req, auth.WithPublicKeyFile(writeFile(t, "priv.pem", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")), "")), "holds a PRIVATE KEY"},
		{"two keys in a PEM file", append(req, auth.WithPublicKeyFile(writeFile(t, "two.pem", both), "")), "holds 2 public keys"},
		{"no PEM", append(req, auth.WithPublicKeyFile(writeFile(t, "none.pem", []byte("hello")), "")), "holds 0 public keys"},
		{"duplicate kid", append(req, auth.WithHMACSecret(k.hmac, "a"), auth.WithPublicKey(&k.rsa.PublicKey, "a")), `key id "a" is used by more than one key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := auth.NewJWTVerifier(tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("NewJWTVerifier = %v; want an error mentioning %q", err, tc.mention)
			}
		})
	}
}

// A lifetime cap refuses tokens meant to live longer: exp − iat, or for a
// token without iat, exp − now.
func TestJWTMaxLifetime(t *testing.T) {
	k := keys(t)
	v := verifier(t, auth.WithMaxLifetime(time.Hour))
	uncapped := verifier(t)
	for _, tc := range []struct {
		name     string
		iat, exp time.Duration // from now; iat 0 leaves it out
		want     error
		mention  string
	}{
		{"within", -time.Minute, 59 * time.Minute, nil, ""},
		{"exactly the cap", -30 * time.Minute, 30 * time.Minute, nil, ""},
		{"longer", -time.Minute, 2 * time.Hour, auth.ErrInvalidClaims, "lives 2h1m0s from iat to exp; this server accepts tokens that live at most 1h0m0s"},
		{"no iat, expiring within the cap", 0, 30 * time.Minute, nil, ""},
		{"no iat, expiring later", 0, 3 * time.Hour, auth.ErrInvalidClaims, "expires in 3h0m0s and has no iat claim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := goodClaims(t)
			c.IssuedAt = nil
			if tc.iat != 0 {
				c.IssuedAt = jwt.NewNumericDate(now.Add(tc.iat))
			}
			c.ExpiresAt = jwt.NewNumericDate(now.Add(tc.exp))
			tok := sign(t, jwt.SigningMethodHS256, k.hmac, c, nil)
			_, err := v.Verify(tok)
			checkErr(t, err, tc.want, tc.mention)
			if _, err := uncapped.Verify(tok); err != nil {
				t.Errorf("without a cap: %v", err)
			}
		})
	}
	if _, err := auth.NewJWTVerifier(auth.WithHMACSecret(k.hmac, ""), auth.WithIssuer(testIssuer), auth.WithAudience(testAudience), auth.WithMaxLifetime(-time.Second)); err == nil || !strings.Contains(err.Error(), "lifetime") {
		t.Errorf("a negative cap: %v", err)
	}
}
