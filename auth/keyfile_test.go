package auth_test

import (
	"encoding/json"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/roomcast/roomcast/auth"
)

// Key files that others than their owner may write are refused: whoever
// can write one can add a key, or a signer, of their own.
func TestKeyFilesOthersMayWriteAreRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no mode bits")
	}
	k := keys(t)
	_, entry := newKey(t, "s", `{}`)
	line, err := json.Marshal(entry)
	if err != nil {
		t.Fatal(err)
	}
	apiKeys := writeFile(t, "keys.jsonl", line)
	secret := writeFile(t, "hs256.key", k.hmac)
	pub := writeFile(t, "ec.pem", publicPEM(t, &k.ec.PublicKey))
	req := []auth.JWTOption{auth.WithIssuer(testIssuer), auth.WithAudience(testAudience)}
	load := map[string]func() error{
		"API key file": func() error { _, err := auth.LoadAPIKeys(apiKeys); return err },
		"HMAC secret": func() error {
			_, err := auth.NewJWTVerifier(append(req, auth.WithHMACSecretFile(secret, ""))...)
			return err
		},
		"public key": func() error {
			_, err := auth.NewJWTVerifier(append(req, auth.WithPublicKeyFile(pub, ""))...)
			return err
		},
	}
	for name, path := range map[string]string{"API key file": apiKeys, "HMAC secret": secret, "public key": pub} {
		if err := load[name](); err != nil {
			t.Errorf("%s, mode 0600: %v", name, err)
		}
		if err := os.Chmod(path, 0o606); err != nil {
			t.Fatal(err)
		}
		if err := load[name](); err == nil || !strings.Contains(err.Error(), "every user may write") {
			t.Errorf("%s, mode 0606: %v; want it refused", name, err)
		}
	}
}
