package server

import (
	"testing"

	"github.com/roomcast/roomcast/auth"
)

// A publish rate's crowded allowance is a fifth of the rate, between
// freeRefusedCalls and freeCredentialCrowdedRefusals; no rate has none.
func TestCrowdedAllowanceIsAFifthOfTheRate(t *testing.T) {
	for _, tc := range []struct {
		perSecond float64
		want      int
	}{{0, 0}, {0.001, 100}, {1, 100}, {500, 100}, {1000, 200}, {10_000, 2000}, {1e6, 2000}} {
		if got := crowdedAllowance(tc.perSecond); got != tc.want {
			t.Errorf("crowdedAllowance(%v) = %d, want %d", tc.perSecond, got, tc.want)
		}
	}
}

// An anonymous caller's publishes have the anonymous publish rate's
// allowance, a credential's the publish rate's: here 100 (the floor, at one
// a second) and 200 (at 1000 a second).
func TestPublishCrowdedAllowanceIsTheCallersRates(t *testing.T) {
	authn, err := auth.NewAuthenticator(auth.WithAnonymous(auth.Grants{}))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := newConfig([]Option{WithAuthenticator(authn), WithPublishRate(1000, 1000), WithAnonymousPublishRate(1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	a, err := newAccess(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	anon := &auth.Identity{Subject: auth.AnonymousSubject, Method: auth.MethodAnonymous}
	cred := &auth.Identity{Subject: "svc", Method: auth.MethodJWT}
	if got := a.publishCrowdedAllowance(anon); got != 100 {
		t.Errorf("an anonymous caller's allowance: %d, want 100", got)
	}
	if got := a.publishCrowdedAllowance(cred); got != 200 {
		t.Errorf("a credential's allowance: %d, want 200", got)
	}
}
