package auth_test

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/roomcast/roomcast/auth"
)

// newKey makes an API key whose entry has subject and grants.
func newKey(t *testing.T, subject string, grants string) (string, auth.APIKeyEntry) {
	t.Helper()
	secret, entry, err := auth.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	entry.Subject = subject
	if err := json.Unmarshal([]byte(grants), &entry.Grants); err != nil {
		t.Fatal(err)
	}
	return secret, entry
}

func TestNewAPIKey(t *testing.T) {
	secret, entry, err := auth.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := regexp.MatchString(`^rck_[0-9a-f]{16}_[0-9a-f]{64}$`, secret); !ok || err != nil || !strings.HasPrefix(secret, auth.APIKeyPrefix+entry.ID+"_") {
		t.Fatalf("key %q, id %q", secret, entry.ID)
	}
	if ok, err := regexp.MatchString(`^[0-9a-f]{64}$`, entry.SHA256); !ok || err != nil || strings.Contains(entry.SHA256, secret[len(secret)-64:]) {
		t.Fatalf("hash %q", entry.SHA256)
	}
	other, _, err := auth.NewAPIKey()
	if err != nil || other == secret {
		t.Fatalf("second key %q, %v", other, err)
	}
}

func TestAPIKeyVerify(t *testing.T) {
	secret, entry := newKey(t, "billing", `{"publish": ["billing.>"]}`)
	anon, anonEntry := newKey(t, "", `{}`)
	s, err := auth.NewAPIKeyStore(entry, anonEntry)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 {
		t.Fatalf("Len = %d", s.Len())
	}
	id, err := s.Verify(secret)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "billing" || id.Method != auth.MethodAPIKey || id.KeyID != entry.ID || !id.Expiry.IsZero() ||
		!id.Allows(auth.Publish, "billing.eu.invoices") || id.Allows(auth.Subscribe, "billing.eu") {
		t.Fatalf("identity %+v", id)
	}
	if id, err := s.Verify(anon); err != nil || id.Subject != "apikey:"+anonEntry.ID || !id.Grants.IsZero() {
		t.Fatalf("default subject: %+v, %v", id, err)
	}

	// A wrong secret and an unknown id fail alike: same path, same error.
	last := "0"
	if strings.HasSuffix(secret, "0") {
		last = "1"
	}
	flipped := secret[:len(secret)-1] + last
	unknownID := auth.APIKeyPrefix + "0000000000000000" + secret[len(auth.APIKeyPrefix)+16:]
	var msgs []string
	for _, key := range []string{flipped, unknownID, secret + "0", secret[:len(secret)-1], auth.APIKeyPrefix + anonEntry.ID + secret[len(auth.APIKeyPrefix)+16:]} {
		_, err := s.Verify(key)
		if !errors.Is(err, auth.ErrInvalidAPIKey) {
			t.Fatalf("Verify(%q) = %v; want ErrInvalidAPIKey", key, err)
		}
		if strings.Contains(err.Error(), key[len(auth.APIKeyPrefix)+17:]) {
			t.Fatalf("error %q echoes the secret", err)
		}
		msgs = append(msgs, err.Error())
	}
	for _, m := range msgs[1:] {
		if m != msgs[0] {
			t.Fatalf("errors differ: %q and %q", msgs[0], m)
		}
	}
	for _, key := range []string{"", "rck_", "rck__x", "rck_abc", "rck_abc_", "rck_a!c_x", "rck_abc_x y", "rck_abc_\xff", "xrck_abc_x", "RCK_abc_x", "rck_" + strings.Repeat("a", 65) + "_x"} {
		if _, err := s.Verify(key); !errors.Is(err, auth.ErrMalformedCredentials) {
			t.Errorf("Verify(%q) = %v; want ErrMalformedCredentials", key, err)
		}
	}
	empty, err := auth.NewAPIKeyStore()
	if err != nil || empty.Len() != 0 {
		t.Fatal(err)
	}
	if _, err := empty.Verify(secret); !errors.Is(err, auth.ErrInvalidAPIKey) {
		t.Fatalf("empty store: %v", err)
	}
}

func TestAPIKeyFile(t *testing.T) {
	secret1, e1 := newKey(t, "billing", `{"publish": ["billing.>"], "presence": ["billing.*"]}`)
	secret2, e2 := newKey(t, "", `{"subscribe": [">"], "admin": true}`)
	e2.Note = "ops console"
	var b strings.Builder
	b.WriteString("# roomcast API keys\n\n")
	for _, e := range []auth.APIKeyEntry{e1, e2} {
		line, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	b.WriteString("   # trailing comment")
	s, err := auth.LoadAPIKeys(writeFile(t, "keys.jsonl", []byte(b.String())))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := s.Verify(secret1); err != nil || id.Subject != "billing" || !id.Allows(auth.Presence, "billing.eu") {
		t.Fatalf("key 1: %+v, %v", id, err)
	}
	if id, err := s.Verify(secret2); err != nil || !id.IsAdmin() || !id.Allows(auth.Subscribe, "any.room") {
		t.Fatalf("key 2: %+v, %v", id, err)
	}

	good, err := json.Marshal(e1)
	if err != nil {
		t.Fatal(err)
	}
	hash := strings.Repeat("ab", 32)
	for _, tc := range []struct{ name, file, mention string }{
		{"not JSON", "{\n", "line 1:"},
		{"unknown field", `{"id":"a","sha256":"` + hash + `","grants":{},"secret":"x"}`, `line 1: json: unknown field "secret"`},
		{"misspelt permission", "# c\n" + `{"id":"a","sha256":"` + hash + `","grants":{"publsh":["a"]}}`, `line 2: json: unknown field "publsh"`},
		{"bad pattern", `{"id":"a","sha256":"` + hash + `","grants":{"publish":["a.>.b"]}}`, `line 1: invalid room pattern "a.>.b": ">" may only be the last segment`},
		{"bad id", `{"id":"a_b","sha256":"` + hash + `"}`, `line 1: id "a_b" is not 1 to 64 of A-Z a-z 0-9 -`},
		{"no id", `{"sha256":"` + hash + `"}`, `line 1: id "" is not`},
		{"short hash", `{"id":"a","sha256":"abcd"}`, "line 1: id \"a\": sha256 is not 64 lowercase hex digits"},
		{"uppercase hash", `{"id":"a","sha256":"` + strings.ToUpper(hash) + `"}`, "sha256 is not 64 lowercase hex digits"},
		{"two values", `{"id":"a","sha256":"` + hash + `"} {}`, "line 1: more than one JSON value"},
		{"duplicate id", string(good) + "\n\n" + string(good), `line 3: id "` + e1.ID + `" is already used on line 1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := auth.ReadAPIKeys(strings.NewReader(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("ReadAPIKeys = %v; want an error mentioning %q", err, tc.mention)
			}
		})
	}
	if _, err := auth.LoadAPIKeys("/nonexistent/keys.jsonl"); err == nil {
		t.Fatal("missing file loaded")
	}
	if _, err := auth.NewAPIKeyStore(e1, e1); err == nil || !strings.Contains(err.Error(), "used twice") {
		t.Fatalf("duplicate entries: %v", err)
	}
}
