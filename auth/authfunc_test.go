package auth_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/roomcast/roomcast/auth"
)

// A call the server already authenticated from its headers carries its
// Identity: the AuthFunc keeps it rather than checking the credential again.
func TestAuthFuncKeepsAnIdentityAlreadyThere(t *testing.T) {
	a, err := auth.NewAuthenticator(auth.WithJWT(verifier(t)))
	if err != nil {
		t.Fatal(err)
	}
	in, err := auth.NewInterceptors(a)
	if err != nil {
		t.Fatal(err)
	}
	id := &auth.Identity{Subject: "svc", Method: auth.MethodJWT}
	ctx, err := in.AuthFunc()(auth.NewContext(context.Background(), id)) // no authorization metadata
	if got, _ := auth.FromContext(ctx); err != nil || got != id {
		t.Errorf("AuthFunc on an authenticated context: %v, %v; want the identity kept", got, err)
	}
	if _, err := in.AuthFunc()(context.Background()); err == nil {
		t.Error("AuthFunc without an identity or a credential: no error")
	}
}

// Authenticating an API key is on every call's path (the server's tap runs
// the AuthFunc): it allocates the copy of the authorization value that
// grpc-go's metadata lookup makes, the Identity, and the context carrying
// it, and nothing for the key's hash or a second lookup of the value.
func TestAuthFuncAllocationsForAnAPIKey(t *testing.T) {
	secret, entry := newKey(t, "svc", `{"publish": ["svc.>"]}`)
	store, err := auth.NewAPIKeyStore(entry)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewAuthenticator(auth.WithAPIKeys(store))
	if err != nil {
		t.Fatal(err)
	}
	in, err := auth.NewInterceptors(a)
	if err != nil {
		t.Fatal(err)
	}
	authenticate := in.AuthFunc()
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+secret))
	allocs := testing.AllocsPerRun(100, func() {
		if got, err := authenticate(ctx); err != nil {
			t.Fatal(err)
		} else if id, _ := auth.FromContext(got); id.Subject != "svc" {
			t.Fatalf("identity %+v", id)
		}
	})
	if allocs > 3 {
		t.Errorf("%v allocations to authenticate an API key, want at most 3", allocs)
	}
}

// A key longer than the buffer Verify hashes short keys from is verified
// all the same.
func TestAPIKeyVerifyLongKey(t *testing.T) {
	entry := auth.APIKeyEntry{ID: strings.Repeat("a", 64), Subject: "long"}
	key := auth.APIKeyPrefix + entry.ID + "_" + strings.Repeat("f", 64) // 133 bytes
	sum := sha256.Sum256([]byte(key))
	entry.SHA256 = hex.EncodeToString(sum[:])
	store, err := auth.NewAPIKeyStore(entry)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := store.Verify(key); err != nil || id.Subject != "long" {
		t.Fatalf("Verify of a %d-byte key: %+v, %v", len(key), id, err)
	}
	if _, err := store.Verify(key[:len(key)-1] + "e"); !errors.Is(err, auth.ErrInvalidAPIKey) {
		t.Fatalf("Verify of a wrong long key: %v, want ErrInvalidAPIKey", err)
	}
}
