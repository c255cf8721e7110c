package auth

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/roomcast/roomcast/internal/keyfile"
)

// APIKeyPrefix starts every roomcast API key. A key is
// "rck_<id>_<secret>": the id names its entry in the key file and the secret
// is 64 hex digits (32 random bytes), for example
// "rck_3f9a0c1d2b4e5f60_9b1c...e2" (85 characters in all).
const APIKeyPrefix = "rck_"

const maxKeyIDLen = 64

// APIKeyEntry is one line of an API key file: a key's id, the SHA-256 of the
// whole key, and what the key may do. The file holds one JSON object per
// line; blank lines and lines starting with "#" are ignored:
//
//	# roomcast API keys: one JSON object per line
//	{"id":"3f9a0c1d2b4e5f60","sha256":"5d41...c2","subject":"billing","grants":{"publish":["billing.>"]}}
//
// Only a hash of the key is stored, so the file does not let its reader
// call the server. SHA-256 (rather than a slow password hash such as
// bcrypt) is enough because the secret is 256 random bits: no dictionary or
// brute-force search of the hash is feasible, and a fast hash keeps every
// call's check cheap.
type APIKeyEntry struct {
	// ID is 1 to 64 of the characters A-Z a-z 0-9 and -.
	ID string `json:"id"`
	// SHA256 is the lowercase hex SHA-256 of the whole key string,
	// "rck_<id>_<secret>".
	SHA256 string `json:"sha256"`
	// Subject is the Identity's Subject; empty means "apikey:" followed by
	// the id.
	Subject string `json:"subject,omitempty"`
	// Grants is what the key may do; see Grants for its JSON form.
	Grants Grants `json:"grants"`
	// Note is free text for the people who manage the file.
	Note string `json:"note,omitempty"`
}

// NewAPIKey makes a new random API key. It returns the key, to give to the
// caller once, and its entry for the key file, with no subject and no grants:
// set those before writing the entry (as one line of JSON, with
// encoding/json) to the file.
func NewAPIKey() (secret string, entry APIKeyEntry, err error) {
	var id [8]byte
	var sec [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", APIKeyEntry{}, fmt.Errorf("auth: generating an API key: %w", err)
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return "", APIKeyEntry{}, fmt.Errorf("auth: generating an API key: %w", err)
	}
	entry.ID = hex.EncodeToString(id[:])
	secret = APIKeyPrefix + entry.ID + "_" + hex.EncodeToString(sec[:])
	sum := sha256.Sum256([]byte(secret))
	entry.SHA256 = hex.EncodeToString(sum[:])
	return secret, entry, nil
}

// APIKeyStore checks API keys against a fixed set of entries. It is safe for
// concurrent use. To change the keys, build a new store and give it to
// Authenticator.Update.
type APIKeyStore struct {
	keys  map[string]*apiKey
	dummy [sha256.Size]byte // compared against when the id is unknown
}

type apiKey struct {
	id      string
	hash    [sha256.Size]byte
	subject string
	grants  Grants
}

// NewAPIKeyStore returns a store of entries. An entry with a bad id or hash,
// or an id used twice, is an error. No entries is allowed: every key is then
// refused.
func NewAPIKeyStore(entries ...APIKeyEntry) (*APIKeyStore, error) {
	s := &APIKeyStore{keys: make(map[string]*apiKey, len(entries))}
	if _, err := rand.Read(s.dummy[:]); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	for i, e := range entries {
		k, err := newAPIKey(e)
		if err != nil {
			return nil, fmt.Errorf("auth: API key entry %d: %w", i+1, err)
		}
		if s.keys[k.id] != nil {
			return nil, fmt.Errorf("auth: API key entry %d: id %s is used twice", i+1, quote(k.id))
		}
		s.keys[k.id] = k
	}
	return s, nil
}

func newAPIKey(e APIKeyEntry) (*apiKey, error) {
	if !validKeyID(e.ID) {
		return nil, fmt.Errorf("id %s is not 1 to %d of A-Z a-z 0-9 -", quote(e.ID), maxKeyIDLen)
	}
	k := &apiKey{id: e.ID, subject: e.Subject, grants: e.Grants}
	if k.subject == "" {
		k.subject = "apikey:" + e.ID
	}
	h, err := hex.DecodeString(e.SHA256)
	if err != nil || len(h) != sha256.Size || e.SHA256 != strings.ToLower(e.SHA256) {
		return nil, fmt.Errorf("id %s: sha256 is not 64 lowercase hex digits", quote(e.ID))
	}
	copy(k.hash[:], h)
	return k, nil
}

// LoadAPIKeys reads an API key file (see APIKeyEntry for its format) and
// returns a store of its keys. Errors name the line at fault. A file that
// its group or every user may write is refused: whoever can write it can add
// a key of their own.
func LoadAPIKeys(path string) (*APIKeyStore, error) {
	f, err := keyfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	defer f.Close()
	s, err := ReadAPIKeys(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ReadAPIKeys is LoadAPIKeys for a file's content.
func ReadAPIKeys(r io.Reader) (*APIKeyStore, error) {
	var entries []APIKeyEntry
	var lines []int
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		var e APIKeyEntry
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("line %d: more than one JSON value", n)
		}
		if _, err := newAPIKey(e); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		entries = append(entries, e)
		lines = append(lines, n)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	seen := map[string]int{}
	for i, e := range entries {
		if first, ok := seen[e.ID]; ok {
			return nil, fmt.Errorf("line %d: id %s is already used on line %d", lines[i], quote(e.ID), first)
		}
		seen[e.ID] = lines[i]
	}
	return NewAPIKeyStore(entries...)
}

// Len returns the number of keys in the store.
func (s *APIKeyStore) Len() int { return len(s.keys) }

// Verify checks key (the whole "rck_<id>_<secret>", without "Bearer ") and
// returns its identity. An unknown id and a wrong secret take the same path
// (a SHA-256 and a constant-time comparison) and return the same error,
// wrapping ErrInvalidAPIKey; a string that is not shaped like a key wraps
// ErrMalformedCredentials.
func (s *APIKeyStore) Verify(key string) (*Identity, error) {
	id, ok := splitAPIKey(key)
	if !ok {
		return nil, fmt.Errorf("%w: API key is not of the form %s<id>_<secret>", ErrMalformedCredentials, APIKeyPrefix)
	}
	// A key of serve's making (85 bytes) is hashed from the stack: []byte(key)
	// would copy it to the heap on every call.
	var buf [128]byte
	sum := sha256.Sum256(append(buf[:0], key...))
	k := s.keys[id]
	want := &s.dummy
	if k != nil {
		want = &k.hash
	}
	if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 || k == nil {
		return nil, fmt.Errorf("%w: the key is unknown or revoked", ErrInvalidAPIKey)
	}
	return k.identity(0), nil
}

// identity is the Identity of a caller with key k, accepted by an
// Authenticator's set gen.
func (k *apiKey) identity(gen uint64) *Identity {
	return &Identity{Subject: k.subject, Method: MethodAPIKey, KeyID: k.id, Grants: k.grants, gen: gen, key: k}
}

// splitAPIKey returns the id of a key shaped "rck_<id>_<secret>".
func splitAPIKey(key string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(key, APIKeyPrefix)
	if !ok || len(key) > MaxTokenLen {
		return "", false
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || !validKeyID(id) || secret == "" {
		return "", false
	}
	for i := 0; i < len(secret); i++ {
		if c := secret[i]; c <= ' ' || c >= 0x7f {
			return "", false
		}
	}
	return id, true
}

func validKeyID(id string) bool {
	if id == "" || len(id) > maxKeyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
