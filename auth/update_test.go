package auth_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomcast/roomcast/auth"
)

func store(t *testing.T, entries ...auth.APIKeyEntry) *auth.APIKeyStore {
	t.Helper()
	s, err := auth.NewAPIKeyStore(entries...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Update swaps what an authenticator accepts; Recheck tells which
// identities it authenticated before no longer stand.
func TestUpdateAndRecheck(t *testing.T) {
	k := keys(t)
	kept, keptEntry := newKey(t, "kept", `{"publish": ["a"]}`)
	gone, goneEntry := newKey(t, "gone", `{"publish": ["a"]}`)
	regranted, regrantedEntry := newKey(t, "regranted", `{"publish": ["a"]}`)
	v := verifier(t)
	anon := auth.Grants{Subscribe: patterns(t, "public.>")}
	a, err := auth.NewAuthenticator(auth.WithJWT(v), auth.WithAPIKeys(store(t, keptEntry, goneEntry, regrantedEntry)), auth.WithAnonymous(anon))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]*auth.Identity{}
	for name, tok := range map[string]string{"kept": kept, "gone": gone, "regranted": regranted, "jwt": sign(t, jwt.SigningMethodES256, k.ec, goodClaims(t), nil)} {
		if ids[name], err = a.AuthenticateToken(tok); err != nil {
			t.Fatal(err)
		}
	}
	if ids["anonymous"], err = a.Authenticate(""); err != nil {
		t.Fatal(err)
	}
	for name, id := range ids {
		if got, err := a.Recheck(id); got != id || err != nil {
			t.Errorf("%s before any update: %v, %v; want it to stand", name, got, err)
		}
	}

	// A failed update changes nothing.
	if err := a.Update(); err == nil {
		t.Fatal("Update with nothing to accept succeeded")
	}
	if _, err := a.AuthenticateToken(gone); err != nil {
		t.Fatalf("after a failed update: %v", err)
	}

	regrantedEntry.Grants.Publish = patterns(t, "b")
	if err := a.Update(auth.WithJWT(v), auth.WithAPIKeys(store(t, keptEntry, regrantedEntry)), auth.WithAnonymous(anon)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AuthenticateToken(gone); !errors.Is(err, auth.ErrInvalidAPIKey) {
		t.Errorf("a removed key after the update: %v", err)
	}
	if id, err := a.AuthenticateToken(regranted); err != nil || !id.Allows(auth.Publish, "b") || id.Allows(auth.Publish, "a") {
		t.Errorf("a key with new grants after the update: %+v, %v", id, err)
	}
	for name, id := range map[string]*auth.Identity{"kept": ids["kept"], "jwt": ids["jwt"], "anonymous": ids["anonymous"]} {
		if got, err := a.Recheck(id); got != id || err != nil {
			t.Errorf("%s: %v, %v; want it to stand", name, got, err)
		}
	}
	if got, err := a.Recheck(ids["gone"]); !errors.Is(err, auth.ErrRevoked) || got != nil {
		t.Errorf("a removed key: %v, %v; want ErrRevoked", got, err)
	}
	if got, err := a.Recheck(ids["regranted"]); err != nil || got == ids["regranted"] || !got.Allows(auth.Publish, "b") || got.Allows(auth.Publish, "a") || got.Subject != "regranted" {
		t.Errorf("a key with new grants: %+v, %v; want a new identity with them", got, err)
	}

	// Credential kinds no longer accepted at all.
	if err := a.Update(auth.WithAPIKeys(store(t, keptEntry))); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"jwt", "anonymous"} {
		if _, err := a.Recheck(ids[name]); !errors.Is(err, auth.ErrRevoked) {
			t.Errorf("%s once no longer accepted: %v; want ErrRevoked", name, err)
		}
	}
	if err := a.Update(auth.WithJWT(v)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Recheck(ids["kept"]); !errors.Is(err, auth.ErrRevoked) {
		t.Errorf("an API key once keys are no longer accepted: %v; want ErrRevoked", err)
	}
	// A key replaced under the same id (another secret) is another key.
	_, replaced := newKey(t, "kept", `{"publish": ["a"]}`)
	replaced.ID = keptEntry.ID
	if err := a.Update(auth.WithAPIKeys(store(t, replaced))); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Recheck(ids["kept"]); !errors.Is(err, auth.ErrRevoked) {
		t.Errorf("a key whose entry has another hash: %v; want ErrRevoked", err)
	}
}

// Authentication goes on, race-free, while the keys are swapped.
func TestUpdateWhileAuthenticating(t *testing.T) {
	key, entry := newKey(t, "svc", `{}`)
	s := store(t, entry)
	a, err := auth.NewAuthenticator(auth.WithAPIKeys(s))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				id, err := a.AuthenticateToken(key)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := a.Recheck(id); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 200 {
		if err := a.Update(auth.WithAPIKeys(s)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}
