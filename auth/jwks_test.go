package auth_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomcast/roomcast/auth"
)

var b64u = base64.RawURLEncoding.EncodeToString

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64u(k.N.Bytes()), "e": b64u(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	b, err := k.Bytes() // 0x04 || X || Y
	if err != nil {
		return nil
	}
	return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64u(b[1:33]), "y": b64u(b[33:])}
}

func edJWK(kid string, k ed25519.PublicKey) map[string]any {
	return map[string]any{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64u(k)}
}

func jwks(t *testing.T, keys ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestJWKS(t *testing.T) {
	k := keys(t)
	set := jwks(t,
		rsaJWK("r1", &k.rsa.PublicKey),
		rsaJWK("r2", &k.otherRSA.PublicKey),
		ecJWK("e1", &k.ec.PublicKey),
		edJWK("o1", k.ed.Public().(ed25519.PublicKey)),
		// Skipped: an encryption key, an RSA key for another algorithm, a
		// symmetric key, an X25519 key and an unknown type.
		map[string]any{"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
		map[string]any{"kty": "RSA", "kid": "ps", "alg": "PS256", "n": b64u(k.rsa.N.Bytes()), "e": "AQAB"},
		map[string]any{"kty": "oct", "kid": "sym", "k": b64u(k.hmac)},
		map[string]any{"kty": "OKP", "kid": "x", "crv": "X25519", "x": b64u(make([]byte, 32))},
		map[string]any{"kty": "future", "kid": "f"},
	)
	v, err := auth.NewJWTVerifier(auth.WithJWKSFile(writeFile(t, "jwks.json", set)),
		auth.WithIssuer(testIssuer), auth.WithAudience(testAudience), auth.WithClock(clock))
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
		{"r1", jwt.SigningMethodRS256, k.rsa, "r1", nil, ""},
		{"r2", jwt.SigningMethodRS256, k.otherRSA, "r2", nil, ""},
		{"e1", jwt.SigningMethodES256, k.ec, "e1", nil, ""},
		{"o1", jwt.SigningMethodEdDSA, k.ed, "o1", nil, ""},
		{"no kid tries every RS256 key", jwt.SigningMethodRS256, k.otherRSA, nil, nil, ""},
		{"r1's key under kid r2", jwt.SigningMethodRS256, k.rsa, "r2", auth.ErrInvalidSignature, "does not verify"},
		{"unknown kid", jwt.SigningMethodRS256, k.rsa, "r9", auth.ErrInvalidSignature, `key id "r9" names no RS256 key`},
		{"EC kid on an RS256 token", jwt.SigningMethodRS256, k.rsa, "e1", auth.ErrInvalidSignature, `"e1" names no RS256 key`},
		{"skipped PS256 key", jwt.SigningMethodRS256, k.rsa, "ps", auth.ErrInvalidSignature, `"ps" names no RS256 key`},
		{"HS256 with the modulus as secret", jwt.SigningMethodHS256, k.rsa.N.Bytes(), "r1", auth.ErrInvalidSignature, `"HS256" is not accepted`},
		{"HS256 with the oct key", jwt.SigningMethodHS256, k.hmac, "sym", auth.ErrInvalidSignature, `"HS256" is not accepted`},
		{"ES256 signed by an untrusted key", jwt.SigningMethodES256, k.otherEC, "e1", auth.ErrInvalidSignature, "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(sign(t, tc.method, tc.key, goodClaims(t), map[string]any{"kid": tc.kid}))
			checkErr(t, err, tc.want, tc.mention)
			if err == nil && (id.Subject != "alice" || id.KeyID != orEmpty(tc.kid)) {
				t.Fatalf("identity %+v", id)
			}
		})
	}
}

func TestJWKSErrors(t *testing.T) {
	k := keys(t)
	small := map[string]any{"kty": "RSA", "kid": "s", "n": b64u([]byte(strings.Repeat("\xff", 128))), "e": "AQAB"}
	offCurve := ecJWK("c", &k.ec.PublicKey)
	offCurve["y"] = b64u(make([]byte, 32))
	priv := edJWK("p", k.ed.Public().(ed25519.PublicKey))
	priv["d"] = b64u(k.ed.Seed())
	for _, tc := range []struct {
		name    string
		data    []byte
		mention string
	}{
		{"not JSON", []byte("{"), "not a JSON Web Key Set"},
		{"empty", []byte(`{"keys": []}`), "no usable signing key among its 0 keys"},
		{"only skipped keys", jwks(t, map[string]any{"kty": "oct", "k": "AAAA"}), "no usable signing key among its 1 keys"},
		{"private key", jwks(t, priv), `key 0 (kid "p"): it is a private key`},
		{"RSA under 2048 bits", jwks(t, small), "smaller than 2048 bits"},
		{"bad n", jwks(t, map[string]any{"kty": "RSA", "n": "!!", "e": "AQAB"}), `"n" is not unpadded base64url`},
		{"even e", jwks(t, map[string]any{"kty": "RSA", "n": b64u(k.rsa.N.Bytes()), "e": "Ag"}), `exponent "e"`},
		{"point off the curve", jwks(t, offCurve), "not on curve P-256"},
		{"short x", jwks(t, map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}), `"x" is not 32 bytes`},
		{"duplicate kid", jwks(t, rsaJWK("a", &k.rsa.PublicKey), ecJWK("a", &k.ec.PublicKey)), `key id "a" is used by more than one key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := auth.NewJWTVerifier(auth.WithJWKS(tc.data), auth.WithIssuer(testIssuer), auth.WithAudience(testAudience))
			if err == nil || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("NewJWTVerifier = %v; want an error mentioning %q", err, tc.mention)
			}
		})
	}
}

// TestPEMForms checks the PKCS #1 and certificate forms of public key files.
func TestPEMForms(t *testing.T) {
	k := keys(t)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "issuer"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.ec.Public(), k.ec)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	v, err := auth.NewJWTVerifier(
		auth.WithPublicKeyFile(writeFile(t, "pkcs1.pem", pkcs1), "rsa"),
		auth.WithPublicKeyFile(writeFile(t, "cert.pem", cert), "ec"),
		auth.WithIssuer(testIssuer), auth.WithAudience(testAudience), auth.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, k.rsa, goodClaims(t), map[string]any{"kid": "rsa"})); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(sign(t, jwt.SigningMethodES256, k.ec, goodClaims(t), map[string]any{"kid": "ec"})); err != nil {
		t.Fatal(err)
	}
}
