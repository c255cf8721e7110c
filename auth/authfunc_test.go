package auth_test

import (
	"context"
	"testing"

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
