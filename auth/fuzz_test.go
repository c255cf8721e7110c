package auth_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/internal/roomname"
)

// FuzzParsePattern checks that parse errors are readable, that IsExact
// holds for exactly the patterns that are room names (internal/roomname's
// fuzz checks the grammar itself), and that such a pattern matches exactly
// its own name.
func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"chat.lobby", "chat.*", "chat.>", ">", "*", "a..b", "chat.>.x", "chat.*x", "\xff", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := auth.ParsePattern(s)
		roomErr := roomname.Validate(s)
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidPattern) || !utf8.ValidString(err.Error()) {
				t.Fatalf("ParsePattern(%q) error %q", s, err)
			}
			if roomErr == nil {
				t.Fatalf("%q is a valid room name but not a valid pattern: %v", s, err)
			}
			return
		}
		if p.String() != s {
			t.Fatalf("String() = %q; want %q", p.String(), s)
		}
		if p.IsExact() != (roomErr == nil) {
			t.Fatalf("%q: IsExact %v, but roomname.Validate = %v", s, p.IsExact(), roomErr)
		}
		if !p.IsExact() {
			return
		}
		if !p.Match(s) {
			t.Fatalf("%q does not match itself", s)
		}
		for _, other := range []string{s + ".x", "x." + s, s + "x", s[:len(s)-1], strings.ToUpper(s), strings.ToLower(s), strings.Replace(s, ".", "_", 1)} {
			if other != s && p.Match(other) {
				t.Fatalf("exact pattern %q matches %q", s, other)
			}
		}
	})
}

// FuzzMatch checks Match against a plain reference implementation.
func FuzzMatch(f *testing.F) {
	for _, c := range [][2]string{
		{"chat.*", "chat.lobby"}, {"chat.*", "chat.a.b"}, {"chat.>", "chat.a.b"}, {"chat.>", "chat"},
		{">", "a"}, {"*.lobby", "chat.lobby"}, {"a.*.c.>", "a.b.c.d.e"}, {"chat.lobby", "chat.lobby"}, {">", "a..b"},
	} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, pattern, room string) {
		p, err := auth.ParsePattern(pattern)
		if err != nil {
			return
		}
		got := p.Match(room)
		if want := refMatch(pattern, room); got != want {
			t.Fatalf("ParsePattern(%q).Match(%q) = %v; want %v", pattern, room, got, want)
		}
		if got && !roomname.Valid(room) {
			t.Fatalf("%q matches the invalid room name %q", pattern, room)
		}
		if p.IsExact() && got != (room == pattern) {
			t.Fatalf("exact %q: Match(%q) = %v", pattern, room, got)
		}
	})
}

// refMatch is the matching rule spelt out on split segments.
func refMatch(pattern, room string) bool {
	if !roomname.Valid(room) {
		return false
	}
	ps, rs := strings.Split(pattern, "."), strings.Split(room, ".")
	for i, p := range ps {
		if p == ">" {
			return i == len(ps)-1 && len(rs) > i
		}
		if i >= len(rs) || p != "*" && p != rs[i] {
			return false
		}
	}
	return len(rs) == len(ps)
}

// fuzzAPIKey is a well-formed key that the fuzz authenticator knows.
const fuzzAPIKey = "rck_0123456789abcdef_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// FuzzAuthenticate feeds arbitrary authorization values to Authenticate and
// to the interceptors' AuthFunc: neither may panic, every error must wrap a
// sentinel, be valid UTF-8 and not echo the token, and the two must agree.
func FuzzAuthenticate(f *testing.F) {
	k := keys(f)
	sum := sha256.Sum256([]byte(fuzzAPIKey))
	store, err := auth.NewAPIKeyStore(auth.APIKeyEntry{ID: "0123456789abcdef", SHA256: hex.EncodeToString(sum[:]), Subject: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	a, err := auth.NewAuthenticator(auth.WithJWT(verifier(f)), auth.WithAPIKeys(store))
	if err != nil {
		f.Fatal(err)
	}
	in, err := auth.NewInterceptors(a)
	if err != nil {
		f.Fatal(err)
	}
	authFunc := in.AuthFunc()
	for _, s := range []string{
		"Bearer " + sign(f, jwt.SigningMethodHS256, k.hmac, goodClaims(f), nil),
		"Bearer " + sign(f, jwt.SigningMethodES256, k.ec, goodClaims(f), map[string]any{"kid": "e"}),
		"Bearer " + fuzzAPIKey, "Bearer rck_0123456789abcdef_00", "Bearer x.y.z", "Basic abc", "Bearer", "",
	} {
		f.Add(s)
	}
	sentinels := []error{
		auth.ErrMissingCredentials, auth.ErrMalformedCredentials, auth.ErrInvalidSignature, auth.ErrExpired,
		auth.ErrNotYetValid, auth.ErrWrongIssuer, auth.ErrWrongAudience, auth.ErrInvalidClaims, auth.ErrInvalidAPIKey,
	}
	f.Fuzz(func(t *testing.T, header string) {
		id, err := a.Authenticate(header)
		if err == nil {
			if id == nil || id.Subject == "" {
				t.Fatalf("Authenticate(%q) = %+v without an error", header, id)
			}
		} else {
			msg := err.Error()
			if id != nil || !utf8.ValidString(msg) || !slices.ContainsFunc(sentinels, func(s error) bool { return errors.Is(err, s) }) {
				t.Fatalf("Authenticate(%q) = %+v, %q", header, id, msg)
			}
			if _, tok, _ := strings.Cut(header, " "); len(tok) >= 72 && strings.Contains(msg, tok) {
				t.Fatalf("error %q echoes the token", msg)
			}
		}
		if header == "" {
			return // metadata with an empty value is not the same as none
		}
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", header))
		ctx, ferr := authFunc(ctx)
		if (err == nil) != (ferr == nil) {
			t.Fatalf("%q: Authenticate says %v but AuthFunc says %v", header, err, ferr)
		}
		if ferr != nil {
			st, _ := status.FromError(ferr)
			if st.Code() != codes.Unauthenticated || st.Message() != err.Error() {
				t.Fatalf("%q: AuthFunc status %v; want UNAUTHENTICATED %q", header, st, err)
			}
			return
		}
		if got, ok := auth.FromContext(ctx); !ok || got.Subject != id.Subject {
			t.Fatalf("%q: context identity %+v; want %+v", header, got, id)
		}
	})
}
