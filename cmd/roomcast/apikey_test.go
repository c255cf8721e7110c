package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/roomcast/roomcast/auth"
)

func TestAPIKeyNewPrintsKeyAndEntry(t *testing.T) {
	ctx := testCtx(t)
	// Flags may come before "new" as well as after it.
	for _, args := range [][]string{
		{"apikey", "new", "--subject", "billing", "--publish", "billing.>, invoices.*", "--subscribe", "billing.>", "--presence", "billing.lobby", "--note", "the billing team"},
		{"apikey", "--subject", "billing", "--publish", "billing.>,invoices.*", "new", "--subscribe", "billing.>", "--presence", "billing.lobby", "--note", "the billing team"},
	} {
		code, stdout, stderr := runCmd(ctx, args...)
		if code != 0 || strings.Count(stdout, "\n") != 1 || strings.Count(stderr, "\n") != 1 {
			t.Fatalf("%q: exit %d, stdout %q, stderr %q; want 0, the key and the entry", args, code, stdout, stderr)
		}
		key := strings.TrimSuffix(stdout, "\n")
		store, err := auth.ReadAPIKeys(strings.NewReader(stderr))
		if err != nil {
			t.Fatalf("%q: the entry %q does not load: %v", args, stderr, err)
		}
		id, err := store.Verify(key)
		if err != nil {
			t.Fatalf("%q: the key does not verify against its entry: %v", args, err)
		}
		g := id.Grants
		if id.Subject != "billing" || !g.Allows(auth.Publish, "billing.eu") || !g.Allows(auth.Publish, "invoices.2026") ||
			g.Allows(auth.Publish, "chat") || !g.Allows(auth.Subscribe, "billing.eu") || !g.Allows(auth.Presence, "billing.lobby") ||
			g.Allows(auth.Presence, "billing.eu") {
			t.Errorf("%q: identity %+v", args, id)
		}
		if !strings.Contains(stderr, `"note":"the billing team"`) || !strings.Contains(stderr, `"billing.>"`) || strings.Contains(stderr, key) {
			t.Errorf("%q: entry %q lacks the note or a pattern as given, or holds the key", args, stderr)
		}
	}
}

func TestAPIKeyNewFile(t *testing.T) {
	ctx := testCtx(t)
	file := filepath.Join(t.TempDir(), "keys.jsonl")
	var keys []string
	for _, subject := range []string{"a", "b"} {
		code, stdout, stderr := runCmd(ctx, "apikey", "new", "--file", file, "--subject", subject, "--publish", subject+".>")
		if code != 0 || !strings.HasPrefix(stdout, auth.APIKeyPrefix) || strings.Count(stdout, "\n") != 1 {
			t.Fatalf("apikey new --file: exit %d, stdout %q, stderr %q; want 0 and the key alone", code, stdout, stderr)
		}
		if !strings.Contains(stderr, file) {
			t.Errorf("apikey new --file does not say where the entry went: %q", stderr)
		}
		keys = append(keys, strings.TrimSuffix(stdout, "\n"))
	}
	info, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", info.Mode().Perm())
	}
	store, err := auth.LoadAPIKeys(file)
	if err != nil || store.Len() != 2 {
		t.Fatalf("key file: %v keys, %v; want 2", store, err)
	}
	for i, subject := range []string{"a", "b"} {
		if id, err := store.Verify(keys[i]); err != nil || id.Subject != subject {
			t.Errorf("key %d: %v, %v; want subject %s", i, id, err, subject)
		}
	}
	content, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(string(content), k) {
			t.Errorf("the key file holds a key:\n%s", content)
		}
	}
}

func TestAPIKeyNewFileAppends(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	// A file without a final newline gets one before the entry.
	file := writeFile(t, dir, "keys", []byte("# roomcast API keys"))
	code, stdout, stderr := runCmd(ctx, "apikey", "new", "--file", file, "--subject", "s", "--subscribe", ">")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	store, err := auth.LoadAPIKeys(file)
	if err != nil || store.Len() != 1 {
		t.Fatalf("key file: %v, %v", store, err)
	}
	if _, err := store.Verify(strings.TrimSuffix(stdout, "\n")); err != nil {
		t.Error(err)
	}

	// A file that is not a key file is left alone.
	for name, content := range map[string]string{
		"not JSON":      "-----BEGIN PRIVATE KEY-----\n",
		"another field": `{"id":"x","sha256":"y","secret":"z"}` + "\n",
	} {
		path := writeFile(t, dir, strings.ReplaceAll(name, " ", "-"), []byte(content))
		code, stdout, stderr := runCmd(ctx, "apikey", "new", "--file", path, "--subject", "s", "--subscribe", ">")
		if code != 1 || stdout != "" || !strings.Contains(stderr, "not an API key file") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 1 and the reason", name, code, stdout, stderr)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != content {
			t.Errorf("%s: the file changed to %q (%v)", name, got, err)
		}
	}
}

func TestAPIKeyUsageErrors(t *testing.T) {
	ctx := testCtx(t)
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"apikey"}, "wrong number of arguments"},
		{[]string{"apikey", "rotate"}, `unknown subcommand "rotate"`},
		{[]string{"apikey", "new", "--publish", ">"}, "--subject is required"},
		{[]string{"apikey", "new", "--subject", "s"}, "give --publish, --subscribe, --presence or --admin"},
		{[]string{"apikey", "new", "--subject", "s", "--publish", "chat.>.x"}, "--publish: invalid room pattern"},
		{[]string{"apikey", "new", "--subject", "s", "--presence", "a..b"}, "--presence: invalid room pattern"},
		{[]string{"apikey", "new", "--subject", "s", "--publish", ">", "extra"}, "wrong number of arguments"},
		{[]string{"apikey", "--subject", "s", "--publish", "chat.>.x", "new"}, "--publish: invalid room pattern"}, // flags before "new" too
		{[]string{"apikey", "new", "--no-such-flag"}, "no-such-flag"},
		{[]string{"apikey", "--no-such-flag", "new"}, "no-such-flag"},
	} {
		code, stdout, stderr := runCmd(ctx, tc.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.says) || !strings.Contains(stderr, apikeyCmd.helpPointer()) {
			t.Errorf("%q: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and %q", tc.args, code, stdout, stderr, tc.says)
		}
	}
	for _, args := range [][]string{{"apikey", "new", "--help"}, {"apikey", "new", "-h"}, {"apikey", "--help"}, {"help", "apikey"}} {
		code, stdout, stderr := runCmd(ctx, args...)
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Usage: roomcast apikey") || !strings.Contains(stdout, "--subject") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}
