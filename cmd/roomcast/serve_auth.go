package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/roomcast/roomcast/auth"
)

// defaultJWTMaxLifetime is --jwt-max-lifetime's default: long enough for
// any access token, short enough that a leaked one, or one whose signing key
// was withdrawn, is not good for days.
const defaultJWTMaxLifetime = 24 * time.Hour

// credentialFlags are serve's flags for who may call it and what they may
// do: JWT keys, an API key file, and anonymous access. With none of them the
// server is open: every caller may do everything.
type credentialFlags struct {
	hmacSecretFile string
	publicKeyFiles pathList
	jwksFile       string
	issuer         string
	audience       string
	maxLifetime    time.Duration
	apiKeysFile    string
	allowAnonymous bool
	anonPublish    string
	anonSubscribe  string
	anonPresence   string

	anonGrants auth.Grants // parsed by validate
}

// define adds the flags to fs.
func (f *credentialFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.hmacSecretFile, "jwt-hmac-secret-file", "",
		"accept HS256 JWTs signed with the secret in `FILE` (at least 32 bytes; a final newline is not part of it)")
	fs.Var(&f.publicKeyFiles, "jwt-public-key-file",
		"accept JWTs signed with the private key of the PEM public key or certificate in `FILE` (RSA: RS256, P-256: ES256, Ed25519: EdDSA); repeat for more")
	fs.StringVar(&f.jwksFile, "jwt-jwks-file", "",
		"accept JWTs signed with the keys of the JSON Web Key Set in `FILE`")
	fs.StringVar(&f.issuer, "jwt-issuer", "",
		"require every JWT's iss claim to be `ISSUER`; required with a JWT key")
	fs.StringVar(&f.audience, "jwt-audience", "",
		"require every JWT's aud claim to name one of `AUDIENCES` (comma-separated); required with a JWT key")
	fs.DurationVar(&f.maxLifetime, "jwt-max-lifetime", defaultJWTMaxLifetime,
		"refuse JWTs meant to live longer than `DURATION`: exp more than that after iat (or, without iat, after now); 0 for no limit")
	fs.StringVar(&f.apiKeysFile, "api-keys-file", "",
		"accept the API keys of `FILE`, one JSON line each, as \"roomcast apikey new --file\" writes them")
	fs.BoolVar(&f.allowAnonymous, "allow-anonymous", false,
		"admit calls that carry no credential, with the --anonymous-* grants only (a credential that fails is still refused)")
	fs.StringVar(&f.anonPublish, "anonymous-publish", "",
		"with --allow-anonymous, let callers without a credential publish to the rooms of `PATTERNS` (comma-separated, such as public.>)")
	fs.StringVar(&f.anonSubscribe, "anonymous-subscribe", "",
		"with --allow-anonymous, let callers without a credential join the rooms of `PATTERNS` (comma-separated)")
	fs.StringVar(&f.anonPresence, "anonymous-presence", "",
		"with --allow-anonymous, let callers without a credential see the presence of the rooms of `PATTERNS` (comma-separated)")
}

// jwtKeys reports whether a JWT key source is given.
func (f *credentialFlags) jwtKeys() bool {
	return f.hmacSecretFile != "" || len(f.publicKeyFiles) > 0 || f.jwksFile != ""
}

// configured reports whether the server authenticates callers at all.
func (f *credentialFlags) configured() bool {
	return f.credentials() || f.allowAnonymous
}

// credentials reports whether callers may present a credential: without
// one, --allow-anonymous alone admits everyone as anonymous.
func (f *credentialFlags) credentials() bool {
	return f.jwtKeys() || f.apiKeysFile != ""
}

// validate checks that the flags make sense together and parses the
// anonymous grants. Its errors are usage errors.
func (f *credentialFlags) validate() error {
	switch {
	case f.jwtKeys() && (f.issuer == "" || len(splitList(f.audience)) == 0):
		return errors.New("--jwt-issuer and --jwt-audience are required with a JWT key: every token's iss and aud are checked against them")
	case !f.jwtKeys() && (f.issuer != "" || f.audience != ""):
		return errors.New("--jwt-issuer and --jwt-audience need a JWT key: give --jwt-hmac-secret-file, --jwt-public-key-file or --jwt-jwks-file")
	case f.maxLifetime < 0:
		return fmt.Errorf("--jwt-max-lifetime must be 0 (no limit) or positive, got %v", f.maxLifetime)
	}
	for _, g := range []struct {
		flag, value string
		into        *[]auth.Pattern
	}{
		{"anonymous-publish", f.anonPublish, &f.anonGrants.Publish},
		{"anonymous-subscribe", f.anonSubscribe, &f.anonGrants.Subscribe},
		{"anonymous-presence", f.anonPresence, &f.anonGrants.Presence},
	} {
		if g.value == "" {
			continue
		}
		if !f.allowAnonymous {
			return fmt.Errorf("--%s needs --allow-anonymous", g.flag)
		}
		pats, err := parsePatternList(g.value)
		if err != nil {
			return fmt.Errorf("--%s: %w", g.flag, err)
		}
		*g.into = pats
	}
	return nil
}

// authenticator reads the key files and returns the authenticator they make,
// and attributes that describe it for the log. It returns nil when no
// credential flag is given: the server is then open.
func (f *credentialFlags) authenticator() (*auth.Authenticator, []any, error) {
	if !f.configured() {
		return nil, nil, nil
	}
	opts, attrs, err := f.options()
	if err != nil {
		return nil, nil, err
	}
	a, err := auth.NewAuthenticator(opts...)
	if err != nil {
		return nil, nil, err
	}
	return a, attrs, nil
}

// reload reads the key files again and gives what they hold now to a, the
// authenticator that authenticator returned. On error a keeps what it had.
func (f *credentialFlags) reload(a *auth.Authenticator) ([]any, error) {
	opts, attrs, err := f.options()
	if err != nil {
		return nil, err
	}
	return attrs, a.Update(opts...)
}

// options reads the key files and returns the authenticator's options, and
// attributes that describe them for the log.
func (f *credentialFlags) options() ([]auth.Option, []any, error) {
	var opts []auth.Option
	var attrs []any
	if f.jwtKeys() {
		jopts := []auth.JWTOption{auth.WithIssuer(f.issuer), auth.WithAudience(splitList(f.audience)...), auth.WithMaxLifetime(f.maxLifetime)}
		if f.hmacSecretFile != "" {
			jopts = append(jopts, auth.WithHMACSecretFile(f.hmacSecretFile, ""))
		}
		for _, p := range f.publicKeyFiles {
			jopts = append(jopts, auth.WithPublicKeyFile(p, ""))
		}
		if f.jwksFile != "" {
			jopts = append(jopts, auth.WithJWKSFile(f.jwksFile))
		}
		v, err := auth.NewJWTVerifier(jopts...)
		if err != nil {
			return nil, nil, fmt.Errorf("JWT keys: %w", err)
		}
		opts = append(opts, auth.WithJWT(v))
		attrs = append(attrs, "jwt_issuer", f.issuer, "jwt_audience", f.audience, "jwt_max_lifetime", f.maxLifetime)
	}
	if f.apiKeysFile != "" {
		keys, err := auth.LoadAPIKeys(f.apiKeysFile)
		if err != nil {
			return nil, nil, fmt.Errorf("--api-keys-file: %w", err)
		}
		opts = append(opts, auth.WithAPIKeys(keys))
		attrs = append(attrs, "api_keys", keys.Len())
	}
	if f.allowAnonymous {
		opts = append(opts, auth.WithAnonymous(f.anonGrants))
		attrs = append(attrs, "anonymous_publish", f.anonPublish, "anonymous_subscribe", f.anonSubscribe, "anonymous_presence", f.anonPresence)
	}
	return opts, attrs, nil
}

// splitList splits a comma-separated flag value, trimming spaces around
// each item and dropping empty ones.
func splitList(s string) []string {
	var items []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// parsePatternList parses a comma-separated list of room patterns.
func parsePatternList(s string) ([]auth.Pattern, error) {
	items := splitList(s)
	if len(items) == 0 {
		return nil, nil
	}
	return auth.ParsePatterns(items...)
}

// pathList is a repeatable flag of file paths.
type pathList []string

// String returns the paths, comma-separated.
func (p *pathList) String() string {
	if p == nil {
		return ""
	}
	return strings.Join(*p, ",")
}

// Values returns the paths, one for each time the flag was given, for
// --print-config.
func (p *pathList) Values() []string { return *p }

// Set adds a path.
func (p *pathList) Set(s string) error {
	if s == "" {
		return errors.New("empty path")
	}
	*p = append(*p, s)
	return nil
}
