package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// The JWT algorithms the verifier accepts, each pinned to one key type.
const (
	algHS256 = "HS256" // []byte secret
	algRS256 = "RS256" // *rsa.PublicKey of at least minRSABits
	algES256 = "ES256" // *ecdsa.PublicKey on P-256
	algEdDSA = "EdDSA" // ed25519.PublicKey
)

const (
	minRSABits    = 2048
	minHMACSecret = 32 // bytes: HS256's full strength
)

// verifyKey is one key the verifier trusts, with the one algorithm it may
// verify. Tying the algorithm to the key is what prevents algorithm
// confusion: an RSA key is never handed to the HMAC verifier.
type verifyKey struct {
	kid string
	alg string
	key any // []byte, *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// newPublicKey pins a public key to its algorithm.
func newPublicKey(pub any, kid string) (verifyKey, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N == nil || k.N.BitLen() < minRSABits {
			return verifyKey{}, fmt.Errorf("RSA key is smaller than %d bits", minRSABits)
		}
		return verifyKey{kid: kid, alg: algRS256, key: k}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return verifyKey{}, errors.New("EC key is not on curve P-256 (only ES256 is accepted)")
		}
		return verifyKey{kid: kid, alg: algES256, key: k}, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return verifyKey{}, errors.New("Ed25519 key has the wrong size")
		}
		return verifyKey{kid: kid, alg: algEdDSA, key: k}, nil
	}
	return verifyKey{}, fmt.Errorf("unsupported public key type %T (supported: RSA, EC P-256, Ed25519)", pub)
}

// newHMACKey pins a shared secret to HS256.
func newHMACKey(secret []byte, kid string) (verifyKey, error) {
	if len(secret) < minHMACSecret {
		return verifyKey{}, fmt.Errorf("HMAC secret is %d bytes; HS256 needs at least %d", len(secret), minHMACSecret)
	}
	return verifyKey{kid: kid, alg: algHS256, key: append([]byte(nil), secret...)}, nil
}

// parsePublicKeyPEM reads the one public key in data: a "PUBLIC KEY" (PKIX),
// "RSA PUBLIC KEY" (PKCS #1) or "CERTIFICATE" block.
func parsePublicKeyPEM(data []byte, kid string) (verifyKey, error) {
	var found []any
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var pub any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				pub = cert.PublicKey
			}
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			return verifyKey{}, fmt.Errorf("it holds a %s; give the verifier only the public key", block.Type)
		default:
			continue
		}
		if err != nil {
			return verifyKey{}, fmt.Errorf("parsing its %s block: %w", block.Type, err)
		}
		found = append(found, pub)
	}
	if len(found) != 1 {
		return verifyKey{}, fmt.Errorf("it holds %d public keys; want exactly 1 PEM block of type PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", len(found))
	}
	return newPublicKey(found[0], kid)
}

// jwk is the part of a JSON Web Key (RFC 7517, 7518, 8037) the verifier
// reads.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"`
}

// parseJWKS reads a JSON Web Key Set: {"keys": [...]}. It keeps the RSA
// (RS256), EC P-256 (ES256) and OKP Ed25519 (EdDSA) signing keys and skips
// keys for other uses or algorithms. A malformed supported key, a private
// key, a repeated kid or a set with no usable key is an error.
func parseJWKS(data []byte) ([]verifyKey, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("it is not a JSON Web Key Set: %w", err)
	}
	var keys []verifyKey
	for i, k := range set.Keys {
		vk, ok, err := k.verifyKey()
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %s): %w", i, quote(k.Kid), err)
		}
		if ok {
			keys = append(keys, vk)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("it has no usable signing key among its %d keys (usable: kty RSA for RS256, EC with crv P-256 for ES256, OKP with crv Ed25519 for EdDSA)", len(set.Keys))
	}
	return keys, nil
}

// verifyKey converts k, reporting ok=false for a key the verifier does not
// use.
func (k jwk) verifyKey() (vk verifyKey, ok bool, err error) {
	if k.Use != "" && k.Use != "sig" {
		return verifyKey{}, false, nil
	}
	if k.D != "" {
		return verifyKey{}, false, errors.New("it is a private key; publish only public keys")
	}
	var pub any
	var alg string
	switch {
	case k.Kty == "RSA":
		alg = algRS256
		n, err := b64Int(k.N, "n")
		if err != nil {
			return verifyKey{}, false, err
		}
		e, err := b64Int(k.E, "e")
		if err != nil {
			return verifyKey{}, false, err
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return verifyKey{}, false, errors.New(`its exponent "e" is not a small odd number`)
		}
		pub = &rsa.PublicKey{N: n, E: int(e.Int64())}
	case k.Kty == "EC" && k.Crv == "P-256":
		alg = algES256
		x, err := b64Fixed(k.X, "x", 32)
		if err != nil {
			return verifyKey{}, false, err
		}
		y, err := b64Fixed(k.Y, "y", 32)
		if err != nil {
			return verifyKey{}, false, err
		}
		point := append(append([]byte{4}, x...), y...)
		if pub, err = ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point); err != nil {
			return verifyKey{}, false, errors.New("its point is not on curve P-256")
		}
	case k.Kty == "OKP" && k.Crv == "Ed25519":
		alg = algEdDSA
		x, err := b64Fixed(k.X, "x", ed25519.PublicKeySize)
		if err != nil {
			return verifyKey{}, false, err
		}
		pub = ed25519.PublicKey(x)
	default:
		return verifyKey{}, false, nil // another key type or curve
	}
	if k.Alg != "" && k.Alg != alg {
		return verifyKey{}, false, nil // e.g. an RSA key meant for PS256 only
	}
	vk, err = newPublicKey(pub, k.Kid)
	return vk, err == nil, err
}

func b64Int(s, name string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("its %q is not unpadded base64url", name)
	}
	return new(big.Int).SetBytes(b), nil
}

func b64Fixed(s, name string, size int) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != size {
		return nil, fmt.Errorf("its %q is not %d bytes of unpadded base64url", name, size)
	}
	return b, nil
}
