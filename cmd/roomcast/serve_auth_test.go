package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
)

// newKey runs "roomcast apikey new --file file" with args and returns the
// key it prints.
func newKey(t *testing.T, file string, args ...string) string {
	t.Helper()
	code, stdout, stderr := runCmd(testCtx(t), append([]string{"apikey", "new", "--file", file}, args...)...)
	if code != 0 || !strings.HasPrefix(stdout, auth.APIKeyPrefix) || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("apikey new: exit %d, stdout %q, stderr %q; want 0 and one key", code, stdout, stderr)
	}
	return strings.TrimSuffix(stdout, "\n")
}

func TestServeAPIKeys(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys.jsonl")
	chat := newKey(t, file, "--subject", "chat-svc", "--publish", "chat.*", "--subscribe", "chat.>")
	billing := newKey(t, file, "--subject", "billing", "--publish", "billing.>", "--note", "billing team")
	s := startServe(t, "--api-keys-file", file)
	ctx := testCtx(t)
	if !strings.Contains(s.stderr.String(), "api_keys=2") {
		t.Errorf("serve does not log the keys it loaded:\n%s", s.stderr)
	}
	c := dialPlaintext(t, s.addr)
	wrong := chat[:len(chat)-1] + "0" // the same key, its last hex digit changed
	if strings.HasSuffix(chat, "0") {
		wrong = chat[:len(chat)-1] + "1"
	}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		room string
		code codes.Code
	}{
		{"no credential", ctx, "chat.a", codes.Unauthenticated},
		{"a wrong secret", withBearer(ctx, wrong), "chat.a", codes.Unauthenticated},
		{"a JWT, not accepted", withBearer(ctx, "e30.e30.e30"), "chat.a", codes.Unauthenticated},
		{"within the grants", withBearer(ctx, chat), "chat.a", codes.OK},
		{"one segment too deep", withBearer(ctx, chat), "chat.a.b", codes.PermissionDenied},
		{"outside the grants", withBearer(ctx, chat), "billing.a", codes.PermissionDenied},
		{"the other key's grants", withBearer(ctx, billing), "billing.eu.invoices", codes.OK},
	} {
		if _, err := publish(tc.ctx, c, tc.room, "x"); status.Code(err) != tc.code {
			t.Errorf("%s: publish to %s: %v, want %v", tc.name, tc.room, err, tc.code)
		}
	}
}

func TestServeJWT(t *testing.T) {
	dir := t.TempDir()
	hmacSecret := []byte("a secret of at least 32 bytes, for HS256 tokens")
	unknownSecret := []byte("another secret of at least 32 bytes, unknown")
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := startServe(t,
		"--jwt-hmac-secret-file", writeFile(t, dir, "hmac", append(hmacSecret, '\n')),
		"--jwt-public-key-file", writeFile(t, dir, "ec.pem", testjwt.PublicKeyPEM(t, &ecKey.PublicKey)),
		"--jwt-public-key-file", writeFile(t, dir, "ed.pem", testjwt.PublicKeyPEM(t, edKey.Public())),
		"--jwt-issuer", testjwt.Issuer, "--jwt-audience", "roomcast, roomcast-eu")
	ctx := testCtx(t)
	c := dialPlaintext(t, s.addr)

	grants := testjwt.Grants(t, "chat.*", "", "")
	// mint signs a token of svc's for audience with key.
	mint := func(method jwt.SigningMethod, key any, audience string) string {
		return testjwt.Sign(t, method, key, testjwt.Claims("svc", audience, time.Now().Add(time.Hour), grants))
	}
	for _, tc := range []struct {
		name  string
		token string
		room  string
		code  codes.Code
	}{
		{"HS256", mint(jwt.SigningMethodHS256, hmacSecret, "roomcast"), "chat.a", codes.OK},
		{"ES256", mint(jwt.SigningMethodES256, ecKey, "roomcast"), "chat.a", codes.OK},
		{"EdDSA", mint(jwt.SigningMethodEdDSA, edKey, "roomcast"), "chat.a", codes.OK},
		{"the second audience", mint(jwt.SigningMethodHS256, hmacSecret, "roomcast-eu"), "chat.a", codes.OK},
		{"outside the grants", mint(jwt.SigningMethodHS256, hmacSecret, "roomcast"), "billing.a", codes.PermissionDenied},
		{"another audience", mint(jwt.SigningMethodHS256, hmacSecret, "elsewhere"), "chat.a", codes.Unauthenticated},
		{"an unknown key", mint(jwt.SigningMethodHS256, unknownSecret, "roomcast"), "chat.a", codes.Unauthenticated},
		{"no credential", "", "chat.a", codes.Unauthenticated},
	} {
		callCtx := ctx
		if tc.token != "" {
			callCtx = withBearer(ctx, tc.token)
		}
		if _, err := publish(callCtx, c, tc.room, "x"); status.Code(err) != tc.code {
			t.Errorf("%s: publish to %s: %v, want %v", tc.name, tc.room, err, tc.code)
		}
	}
}

// serve refuses JWTs meant to live longer than --jwt-max-lifetime, 24
// hours by default.
func TestServeJWTMaxLifetime(t *testing.T) {
	dir := t.TempDir()
	secret := []byte("a secret of at least 32 bytes, for HS256 tokens")
	file := writeFile(t, dir, "hmac", secret)
	g, err := auth.ParsePatterns("r")
	if err != nil {
		t.Fatal(err)
	}
	grants := auth.Grants{Publish: g}
	ctx := testCtx(t)
	for _, tc := range []struct {
		flags []string
		life  time.Duration
		code  codes.Code
	}{
		{nil, 23 * time.Hour, codes.OK},
		{nil, 25 * time.Hour, codes.Unauthenticated},
		{[]string{"--jwt-max-lifetime", "1h"}, 2 * time.Hour, codes.Unauthenticated},
		{[]string{"--jwt-max-lifetime", "0"}, 1000 * time.Hour, codes.OK},
	} {
		s := startServe(t, append([]string{"--jwt-hmac-secret-file", file, "--jwt-issuer", testjwt.Issuer, "--jwt-audience", "roomcast"}, tc.flags...)...)
		tok := testjwt.Sign(t, jwt.SigningMethodHS256, secret, testjwt.Claims("svc", "roomcast", time.Now().Add(tc.life), grants))
		_, err := publish(withBearer(ctx, tok), dialPlaintext(t, s.addr), "r", "x")
		if status.Code(err) != tc.code || (err != nil && !strings.Contains(err.Error(), "at most")) {
			t.Errorf("%q, a token for %v: %v, want %v", tc.flags, tc.life, err, tc.code)
		}
	}
	code, _, stderr := runCmd(ctx, "serve", "--jwt-hmac-secret-file", file, "--jwt-issuer", "i", "--jwt-audience", "a", "--jwt-max-lifetime", "-1s")
	if code != exitUsage || !strings.Contains(stderr, "--jwt-max-lifetime") {
		t.Errorf("a negative --jwt-max-lifetime: exit %d, stderr %q", code, stderr)
	}
}

func TestServeAnonymous(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys.jsonl")
	key := newKey(t, file, "--subject", "svc", "--publish", ">")
	s := startServe(t, "--api-keys-file", file, "--allow-anonymous", "--anonymous-publish", "public.>, open")
	ctx := testCtx(t)
	c := dialPlaintext(t, s.addr)
	for _, tc := range []struct {
		name string
		ctx  context.Context
		room string
		code codes.Code
	}{
		{"anonymous within its grants", ctx, "public.a.b", codes.OK},
		{"anonymous, the second pattern", ctx, "open", codes.OK},
		{"anonymous outside its grants", ctx, "chat.a", codes.PermissionDenied},
		{"a key", withBearer(ctx, key), "chat.a", codes.OK},
		{"a bad key never falls back to anonymous", withBearer(ctx, key+"0"), "public.a", codes.Unauthenticated},
	} {
		if _, err := publish(tc.ctx, c, tc.room, "x"); status.Code(err) != tc.code {
			t.Errorf("%s: publish to %s: %v, want %v", tc.name, tc.room, err, tc.code)
		}
	}
}

// serve logs refused credentials with the client's address.
func TestServeLogsRefusedCredentials(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys.jsonl")
	key := newKey(t, file, "--subject", "svc", "--publish", "r")
	s := startServe(t, "--api-keys-file", file)
	ctx := testCtx(t)
	if _, err := publish(withBearer(ctx, key+"0"), dialPlaintext(t, s.addr), "r", "x"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("publish with a wrong key: %v", err)
	}
	s.stderr.waitFor(t, ctx, regexp.MustCompile(`level=WARN msg="authentication failed" peer=127\.0\.0\.1:\d+ rpc=/roomcast\.v1\.BrokerService/Publish err="invalid API key: the key is unknown or revoked"`))
}

func TestServeOpenWarns(t *testing.T) {
	s := startServe(t)
	if out := s.stderr.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "server is open") ||
		!strings.Contains(out, "transport=plaintext") {
		t.Errorf("an open server on loopback does not warn:\n%s", out)
	}
	if _, err := publish(testCtx(t), dialPlaintext(t, s.addr), "any.room", "x"); err != nil {
		t.Errorf("publish to an open server: %v", err)
	}
}

func TestServeCredentialFileErrors(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)
	jwtFlags := []string{"--jwt-issuer", "i", "--jwt-audience", "a"}
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"missing key file", []string{"--api-keys-file", filepath.Join(dir, "missing")}, "--api-keys-file"},
		{"bad key file", []string{"--api-keys-file", writeFile(t, dir, "bad.jsonl", []byte("{}\n"))}, "line 1"},
		{"short HMAC secret", append([]string{"--jwt-hmac-secret-file", writeFile(t, dir, "short", []byte("short\n"))}, jwtFlags...), "JWT keys"},
		{"a private key as public key", append([]string{"--jwt-public-key-file", writeFile(t, dir, "priv.pem", privateKeyPEM(t))}, jwtFlags...), "JWT keys"},
		{"missing JWKS", append([]string{"--jwt-jwks-file", filepath.Join(dir, "missing.json")}, jwtFlags...), "JWT keys"},
	} {
		args := append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", ""}, tc.args...)
		code, stdout, stderr := runCmd(ctx, args...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, tc.says) || strings.Contains(stderr, "serving gRPC") {
			t.Errorf("%s: exit %d, stdout %q, stderr:\n%s\nwant exit 1, and %q, before serving", tc.name, code, stdout, stderr, tc.says)
		}
	}
}

// privateKeyPEM returns a new P-256 private key in PEM.
func privateKeyPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
