package auth_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/roomcast/roomcast/auth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// now is the fixed time the tests' verifiers and tokens live in.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return now }

const (
	testIssuer   = "https://issuer.test"
	testAudience = "roomcast"
)

// testKeys are signing keys made once for the whole test binary.
type testKeys struct {
	hmac, otherHMAC []byte
	rsa, otherRSA   *rsa.PrivateKey
	ec, otherEC     *ecdsa.PrivateKey
	ed, otherEd     ed25519.PrivateKey
}

var (
	keysOnce sync.Once
	keysVal  *testKeys
	keysErr  error
)

func keys(t testing.TB) *testKeys {
	t.Helper()
	keysOnce.Do(func() { keysVal, keysErr = newTestKeys() })
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keysVal
}

func newTestKeys() (*testKeys, error) {
	k := &testKeys{
		hmac:      []byte("0123456789abcdef0123456789abcdef-hs256"),
		otherHMAC: []byte("another secret that is long enough for HS256"),
	}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if k.otherRSA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if k.otherEC, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	if _, k.otherEd, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	return k, nil
}

// writeFile writes data to name in a temporary directory and returns its path.
func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// publicPEM returns pub as a "PUBLIC KEY" PEM block.
func publicPEM(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// verifier returns a JWT verifier trusting the test keys: the HMAC secret
// from a file and the three public keys from PEM files.
func verifier(t testing.TB, opts ...auth.JWTOption) *auth.JWTVerifier {
	t.Helper()
	k := keys(t)
	base := []auth.JWTOption{
		auth.WithHMACSecretFile(writeFile(t, "hs256.key", append(append([]byte(nil), k.hmac...), '\n')), ""),
		auth.WithPublicKeyFile(writeFile(t, "rsa.pem", publicPEM(t, &k.rsa.PublicKey)), ""),
		auth.WithPublicKeyFile(writeFile(t, "ec.pem", publicPEM(t, &k.ec.PublicKey)), ""),
		auth.WithPublicKeyFile(writeFile(t, "ed.pem", publicPEM(t, k.ed.Public())), ""),
		auth.WithIssuer(testIssuer),
		auth.WithAudience(testAudience),
		auth.WithClock(clock),
	}
	v, err := auth.NewJWTVerifier(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// goodClaims are valid claims for subject alice at the tests' time.
func goodClaims(t testing.TB) *auth.Claims {
	return &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    testIssuer,
			Subject:   "alice",
			Audience:  jwt.ClaimStrings{testAudience},
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			IssuedAt:  jwt.NewNumericDate(now.Add(-time.Minute)),
		},
		Roomcast: &auth.Grants{
			Publish:   patterns(t, "chat.*"),
			Subscribe: patterns(t, "chat.>"),
			Presence:  patterns(t, "chat.*"),
		},
	}
}

// patterns parses patterns that must be valid.
func patterns(t testing.TB, ss ...string) []auth.Pattern {
	t.Helper()
	ps, err := auth.ParsePatterns(ss...)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// sign signs claims with method and key; header entries are added to (or,
// with a nil value, removed from) the JOSE header.
func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.Claims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
