package auth

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomcast/roomcast/internal/keyfile"
)

// DefaultLeeway is the clock skew a JWTVerifier tolerates by default when
// checking exp, nbf and iat.
const DefaultLeeway = 30 * time.Second

// MaxTokenLen is the longest token accepted, in bytes; longer ones are
// refused as malformed before any parsing.
const MaxTokenLen = 8 << 10

// Claims is the payload of a roomcast JWT, for issuers that mint tokens with
// github.com/golang-jwt/jwt/v5. The verifier requires sub, exp, iss and aud
// (and checks nbf and iat when present); the "roomcast" claim carries the
// Grants, and a token without it is authenticated but allowed nothing:
//
//	{
//	  "iss": "https://auth.example.com", "aud": "roomcast", "sub": "billing",
//	  "exp": 1767225600,
//	  "roomcast": {"publish": ["chat.*"], "subscribe": ["chat.>"], "presence": ["chat.*"], "admin": false}
//	}
type Claims struct {
	jwt.RegisteredClaims
	// Roomcast is the "roomcast" claim: what the token's holder may do.
	Roomcast *Grants `json:"roomcast,omitempty"`
}

// tokenClaims is Claims as verified: the roomcast claim is decoded only
// after the signature checks, so that a bad one is reported as such.
type tokenClaims struct {
	jwt.RegisteredClaims
	Roomcast json.RawMessage `json:"roomcast"`
}

// JWTVerifier verifies roomcast JWTs signed with HS256, RS256, ES256 or
// EdDSA (Ed25519). Each configured key verifies only its own algorithm, so
// algorithm confusion (an HS256 token "signed" with an RSA public key's
// bytes) and "none" are refused.
//
// A token's "kid" header picks the key with that id; if no key has it, the
// keys configured without a kid are tried. A token without a kid is tried
// against every key of its algorithm.
//
// It is safe for concurrent use.
type JWTVerifier struct {
	keys        []verifyKey
	algs        []string // accepted algorithms, sorted
	issuer      string
	audience    []string
	maxLifetime time.Duration // 0: no cap
	now         func() time.Time
	parser      *jwt.Parser
}

// JWTOption configures NewJWTVerifier.
type JWTOption func(*jwtConfig)

type jwtConfig struct {
	sources     []func() ([]verifyKey, error)
	issuer      string
	audience    []string
	leeway      time.Duration
	maxLifetime time.Duration
	now         func() time.Time
}

// WithHMACSecret trusts secret for HS256 tokens. It must be at least 32
// bytes. kid is the key's id, matched against tokens' "kid" header (see
// JWTVerifier), and may be empty. There is no default key: at least one of
// the key options must be given.
func WithHMACSecret(secret []byte, kid string) JWTOption {
	secret = append([]byte(nil), secret...)
	return addKeys(func() ([]verifyKey, error) {
		k, err := newHMACKey(secret, kid)
		return []verifyKey{k}, err
	})
}

// WithHMACSecretFile is WithHMACSecret with the secret read from the file at
// path when NewJWTVerifier runs. A trailing newline ("\n" or "\r\n") is not
// part of the secret; any other byte is. A file that its group or every user
// may write is refused, as for every key file. There is no default key.
func WithHMACSecretFile(path, kid string) JWTOption {
	return addKeys(func() ([]verifyKey, error) {
		b, err := keyfile.Read(path)
		if err != nil {
			return nil, err
		}
		b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
		k, err := newHMACKey(b, kid)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return []verifyKey{k}, nil
	})
}

// WithPublicKey trusts pub, which pins the algorithm: an *rsa.PublicKey of
// at least 2048 bits verifies RS256, an *ecdsa.PublicKey on P-256 verifies
// ES256, and an ed25519.PublicKey verifies EdDSA. kid is as for
// WithHMACSecret. There is no default key.
func WithPublicKey(pub crypto.PublicKey, kid string) JWTOption {
	return addKeys(func() ([]verifyKey, error) {
		k, err := newPublicKey(pub, kid)
		return []verifyKey{k}, err
	})
}

// WithPublicKeyFile is WithPublicKey with the key read from the PEM file at
// path when NewJWTVerifier runs. The file must hold exactly one "PUBLIC KEY"
// (PKIX), "RSA PUBLIC KEY" (PKCS #1) or "CERTIFICATE" block; a private key is
// refused, and so is a file that its group or every user may write. There
// is no default key.
func WithPublicKeyFile(path, kid string) JWTOption {
	return addKeys(func() ([]verifyKey, error) {
		b, err := keyfile.Read(path)
		if err != nil {
			return nil, err
		}
		k, err := parsePublicKeyPEM(b, kid)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return []verifyKey{k}, nil
	})
}

// WithJWKS trusts the signing keys of a JSON Web Key Set ({"keys": [...]}):
// RSA keys (RS256), EC keys on P-256 (ES256) and OKP Ed25519 keys (EdDSA),
// each selected by its "kid". Keys with another "use" than "sig", another
// "alg" than the one their type pins, or another type or curve are skipped;
// a set with no usable key, a malformed key or a private key is an error.
// There is no default key set.
func WithJWKS(data []byte) JWTOption {
	data = append([]byte(nil), data...)
	return addKeys(func() ([]verifyKey, error) { return parseJWKS(data) })
}

// WithJWKSFile is WithJWKS with the set read from the file at path when
// NewJWTVerifier runs. A file that its group or every user may write is
// refused. There is no default key set.
func WithJWKSFile(path string) JWTOption {
	return addKeys(func() ([]verifyKey, error) {
		b, err := keyfile.Read(path)
		if err != nil {
			return nil, err
		}
		keys, err := parseJWKS(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return keys, nil
	})
}

func addKeys(f func() ([]verifyKey, error)) JWTOption {
	return func(c *jwtConfig) { c.sources = append(c.sources, f) }
}

// WithIssuer sets the issuer that every token's "iss" must equal. It is
// required: there is no default.
func WithIssuer(iss string) JWTOption { return func(c *jwtConfig) { c.issuer = iss } }

// WithAudience sets the audiences a token's "aud" must name at least one of.
// It is required: there is no default.
func WithAudience(aud ...string) JWTOption {
	return func(c *jwtConfig) { c.audience = append(c.audience, aud...) }
}

// WithLeeway sets the clock skew tolerated when checking exp, nbf and iat.
// The default is DefaultLeeway (30 seconds).
func WithLeeway(d time.Duration) JWTOption { return func(c *jwtConfig) { c.leeway = d } }

// WithMaxLifetime refuses tokens meant to live longer than d: those whose
// exp is more than d after their iat, or for a token without iat, more than
// d from now. A stream authenticated with a JWT lives until the token
// expires, and a token cannot be revoked before then (removing its signing
// key stops new calls, not open streams), so the cap bounds how long a
// leaked token stays useful. Such a token fails with ErrInvalidClaims. The
// default is 0: no cap.
func WithMaxLifetime(d time.Duration) JWTOption {
	return func(c *jwtConfig) { c.maxLifetime = d }
}

// WithClock sets the function that tells the verifier the current time. The
// default is time.Now; tests pass a fixed clock.
func WithClock(now func() time.Time) JWTOption { return func(c *jwtConfig) { c.now = now } }

// NewJWTVerifier returns a verifier for the keys, issuer and audience that
// opts give. Key files are read now, once; to pick up a rotated key, build a
// new verifier and give it to Authenticator.Update. At least one key, the issuer and an audience are required.
func NewJWTVerifier(opts ...JWTOption) (*JWTVerifier, error) {
	c := jwtConfig{leeway: DefaultLeeway, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	switch {
	case c.issuer == "":
		return nil, errors.New("auth: JWT verifier needs an expected issuer (WithIssuer)")
	case len(c.audience) == 0 || slices.Contains(c.audience, ""):
		return nil, errors.New("auth: JWT verifier needs one or more non-empty expected audiences (WithAudience)")
	case c.leeway < 0:
		return nil, fmt.Errorf("auth: JWT leeway must not be negative, got %v", c.leeway)
	case c.maxLifetime < 0:
		return nil, fmt.Errorf("auth: JWT maximum lifetime must not be negative, got %v", c.maxLifetime)
	case c.now == nil:
		return nil, errors.New("auth: JWT verifier clock is nil")
	case len(c.sources) == 0:
		return nil, errors.New("auth: JWT verifier needs at least one key (WithHMACSecretFile, WithPublicKeyFile, WithJWKSFile, ...)")
	}
	v := &JWTVerifier{issuer: c.issuer, audience: slices.Clone(c.audience), maxLifetime: c.maxLifetime, now: c.now}
	kids := map[string]bool{}
	for _, src := range c.sources {
		keys, err := src()
		if err != nil {
			return nil, fmt.Errorf("auth: JWT key: %w", err)
		}
		for _, k := range keys {
			if k.kid != "" {
				if kids[k.kid] {
					return nil, fmt.Errorf("auth: JWT key id %s is used by more than one key", quote(k.kid))
				}
				kids[k.kid] = true
			}
			if !slices.Contains(v.algs, k.alg) {
				v.algs = append(v.algs, k.alg)
			}
			v.keys = append(v.keys, k)
		}
	}
	slices.Sort(v.algs)
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(v.algs),
		jwt.WithLeeway(c.leeway),
		jwt.WithTimeFunc(c.now),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
	)
	return v, nil
}

// Verify checks token (a compact JWS, without the "Bearer " prefix) and
// returns the identity it carries. Its errors wrap ErrMalformedCredentials,
// ErrInvalidSignature, ErrExpired, ErrNotYetValid, ErrWrongIssuer,
// ErrWrongAudience or ErrInvalidClaims.
func (v *JWTVerifier) Verify(token string) (*Identity, error) {
	if token == "" || len(token) > MaxTokenLen {
		return nil, fmt.Errorf("%w: token is empty or longer than %d bytes", ErrMalformedCredentials, MaxTokenLen)
	}
	alg, kid, err := readHeader(token)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(v.algs, alg) {
		return nil, fmt.Errorf("%w: token algorithm %s is not accepted (accepted: %s)", ErrInvalidSignature, quote(alg), strings.Join(v.algs, ", "))
	}
	keys := v.candidates(alg, kid)
	if len(keys.Keys) == 0 {
		return nil, fmt.Errorf("%w: token key id %s names no %s key", ErrInvalidSignature, quote(kid), alg)
	}
	var claims tokenClaims
	_, err = v.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		if t.Method.Alg() != alg { // cannot happen: both read the same header
			return nil, jwt.ErrTokenSignatureInvalid
		}
		return keys, nil
	})
	if err != nil {
		return nil, verifyError(err, &claims)
	}
	return v.identity(&claims, kid)
}

// candidates returns the keys that may verify a token with this alg and
// kid: the key with that kid if there is one, else the keys without a kid;
// for a token without a kid, every key of the algorithm.
func (v *JWTVerifier) candidates(alg, kid string) jwt.VerificationKeySet {
	var set jwt.VerificationKeySet
	pick := func(match func(verifyKey) bool) {
		for _, k := range v.keys {
			if k.alg == alg && match(k) {
				set.Keys = append(set.Keys, k.key)
			}
		}
	}
	switch {
	case kid == "":
		pick(func(verifyKey) bool { return true })
	case slices.ContainsFunc(v.keys, func(k verifyKey) bool { return k.kid == kid }):
		pick(func(k verifyKey) bool { return k.kid == kid })
	default:
		pick(func(k verifyKey) bool { return k.kid == "" })
	}
	return set
}

var errNotJWT = fmt.Errorf("%w: token is not a well-formed JWT", ErrMalformedCredentials)

// readHeader decodes the token's JOSE header just far enough to choose keys.
// It reads exact member names, as jwt does, so the two cannot disagree.
func readHeader(token string) (alg, kid string, err error) {
	seg, _, ok := strings.Cut(token, ".")
	if !ok {
		return "", "", errNotJWT
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return "", "", errNotJWT
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return "", "", errNotJWT
	}
	if _, ok := hdr["crit"]; ok {
		return "", "", fmt.Errorf("%w: token has critical header parameters (crit), which are not supported", ErrMalformedCredentials)
	}
	if err := json.Unmarshal(hdr["alg"], &alg); err != nil || alg == "" {
		return "", "", fmt.Errorf("%w: token header has no alg", ErrMalformedCredentials)
	}
	if k, ok := hdr["kid"]; ok {
		if err := json.Unmarshal(k, &kid); err != nil {
			return "", "", fmt.Errorf("%w: token header kid is not a string", ErrMalformedCredentials)
		}
	}
	return alg, kid, nil
}

// verifyError maps a jwt/v5 error to this package's, in words for the
// client; it never passes on jwt's own text, which may quote the token.
func verifyError(err error, c *tokenClaims) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errNotJWT
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return fmt.Errorf("%w: token signature does not verify", ErrInvalidSignature)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: token expired at %s", ErrExpired, claimTime(c.ExpiresAt))
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fmt.Errorf("%w: token is not valid before %s", ErrNotYetValid, claimTime(c.NotBefore))
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fmt.Errorf("%w: token is issued at %s, in the future", ErrNotYetValid, claimTime(c.IssuedAt))
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fmt.Errorf("%w: token has no exp claim", ErrInvalidClaims)
	}
	return fmt.Errorf("%w: token claims are not valid", ErrInvalidClaims)
}

// checkLifetime applies WithMaxLifetime to a token whose exp is set.
func (v *JWTVerifier) checkLifetime(c *tokenClaims) error {
	if v.maxLifetime == 0 {
		return nil
	}
	if c.IssuedAt == nil {
		if left := c.ExpiresAt.Sub(v.now()); left > v.maxLifetime {
			return fmt.Errorf("%w: token expires in %v and has no iat claim; this server accepts tokens that live at most %v", ErrInvalidClaims, left.Round(time.Second), v.maxLifetime)
		}
		return nil
	}
	if life := c.ExpiresAt.Sub(c.IssuedAt.Time); life > v.maxLifetime {
		return fmt.Errorf("%w: token lives %v from iat to exp; this server accepts tokens that live at most %v", ErrInvalidClaims, life, v.maxLifetime)
	}
	return nil
}

func claimTime(d *jwt.NumericDate) string {
	if d == nil {
		return "an unknown time"
	}
	return d.UTC().Format(time.RFC3339)
}

// identity checks what jwt does not (sub, iss, aud, the roomcast claim) on
// a token whose signature and times are good.
func (v *JWTVerifier) identity(c *tokenClaims, kid string) (*Identity, error) {
	switch {
	case c.Subject == "":
		return nil, fmt.Errorf("%w: token has no sub claim", ErrInvalidClaims)
	case c.Issuer == "":
		return nil, fmt.Errorf("%w: token has no iss claim", ErrWrongIssuer)
	case c.Issuer != v.issuer:
		return nil, fmt.Errorf("%w: token issuer %s is not accepted", ErrWrongIssuer, quote(c.Issuer))
	case len(c.Audience) == 0:
		return nil, fmt.Errorf("%w: token has no aud claim", ErrWrongAudience)
	case !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(v.audience, a) }):
		return nil, fmt.Errorf("%w: token audience %s is not accepted", ErrWrongAudience, quote(strings.Join(c.Audience, ", ")))
	}
	if err := v.checkLifetime(c); err != nil {
		return nil, err
	}
	id := &Identity{Subject: c.Subject, Method: MethodJWT, KeyID: kid, Expiry: c.ExpiresAt.Time}
	if len(c.Roomcast) > 0 {
		if err := json.Unmarshal(c.Roomcast, &id.Grants); err != nil {
			return nil, fmt.Errorf("%w: roomcast claim: %s", ErrInvalidClaims, strings.ToValidUTF8(err.Error(), "?"))
		}
	}
	return id, nil
}
