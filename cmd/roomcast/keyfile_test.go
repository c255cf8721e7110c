package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/roomcast/roomcast/internal/testsupport/testcert"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
)

// groupWritable makes the file at path writable by its group.
func groupWritable(t *testing.T, path string) string {
	t.Helper()
	if err := os.Chmod(path, 0o660); err != nil {
		t.Fatal(err)
	}
	return path
}

// jwksOf returns a JSON Web Key Set of key's public key.
func jwksOf(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	pub, err := key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	b, err := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "EC", "crv": "P-256", "kid": "k", "x": enc(pub[1:33]), "y": enc(pub[33:])}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serve refuses every key file, certificate and secret that others than its
// owner may write: whoever can change one can let themselves in.
func TestServeRefusesKeyFilesOthersMayWrite(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no mode bits")
	}
	dir := t.TempDir()
	ctx := testCtx(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys.jsonl")
	newKey(t, keys, "--subject", "s", "--publish", ">")
	ca := testcert.NewCA(t, "CA")
	cert, key := ca.ServerFiles(t)
	jwt := []string{"--jwt-issuer", "i", "--jwt-audience", "a"}
	tls := func(args ...string) []string { return append([]string{"--tls-cert", cert, "--tls-key", key}, args...) }
	for _, tc := range []struct {
		flag string
		args func(path string) []string
		data []byte
	}{
		{"--api-keys-file", func(p string) []string { return []string{"--api-keys-file", p} }, nil},
		{"--jwt-hmac-secret-file", func(p string) []string { return append([]string{"--jwt-hmac-secret-file", p}, jwt...) }, []byte("a secret of at least 32 bytes, for HS256 tokens")},
		{"--jwt-public-key-file", func(p string) []string { return append([]string{"--jwt-public-key-file", p}, jwt...) }, testjwt.PublicKeyPEM(t, &ecKey.PublicKey)},
		{"--jwt-jwks-file", func(p string) []string { return append([]string{"--jwt-jwks-file", p}, jwt...) }, jwksOf(t, ecKey)},
		{"--tls-key", func(p string) []string { return []string{"--tls-cert", cert, "--tls-key", p} }, nil},
		{"--tls-cert", func(p string) []string { return []string{"--tls-cert", p, "--tls-key", key} }, nil},
		{"--tls-client-ca", func(p string) []string { return tls("--tls-client-ca", p) }, ca.PEM},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			var path string
			switch {
			case tc.data != nil:
				path = writeFile(t, t.TempDir(), "file", tc.data)
			default: // a copy of the file the server would take
				orig := map[string]string{"--api-keys-file": keys, "--tls-key": key, "--tls-cert": cert}[tc.flag]
				b, err := os.ReadFile(orig)
				if err != nil {
					t.Fatal(err)
				}
				path = writeFile(t, t.TempDir(), "file", b)
			}
			// As it is, the file is taken.
			startServe(t, tc.args(path)...)
			groupWritable(t, path)
			args := append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", ""}, tc.args(path)...)
			code, _, stderr := runCmd(ctx, args...)
			if code != 1 || !strings.Contains(stderr, "its group may write") || !strings.Contains(stderr, "chmod go-w") || strings.Contains(stderr, "serving gRPC") {
				t.Errorf("a group-writable %s: exit %d, stderr:\n%s\nwant exit 1 and the reason, before serving", tc.flag, code, stderr)
			}
		})
	}
}

// "apikey new --file" makes an existing key file readable and writable by
// its owner only.
func TestAPIKeyNewTightensTheFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no mode bits")
	}
	file := writeFile(t, t.TempDir(), "keys.jsonl", []byte("# keys\n"))
	if err := os.Chmod(file, 0o666); err != nil {
		t.Fatal(err)
	}
	newKey(t, file, "--subject", "s", "--publish", ">")
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}
