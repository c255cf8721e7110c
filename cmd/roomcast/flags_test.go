package main

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// parseCmd parses args as the command name would, and returns its flags.
func parseCmd(t *testing.T, name string, args ...string) (*flag.FlagSet, *parsed, error) {
	t.Helper()
	c := lookup(name)
	fs, _ := c.flagSet()
	p, err := parseArgs(fs, args, func() *flag.FlagSet { fs, _ := c.flagSet(); return fs })
	return fs, p, err
}

// value returns the value of fs's flag name.
func value(t *testing.T, fs *flag.FlagSet, name string) string {
	t.Helper()
	f := fs.Lookup(name)
	if f == nil {
		t.Fatalf("no flag --%s", name)
	}
	return f.Value.String()
}

// Flags may follow arguments: "subscribe chat.lobby --json" is a JSON
// subscription to chat.lobby, not a subscription to a room named --json.
func TestFlagsAfterArguments(t *testing.T) {
	for _, tc := range []struct {
		cmd   string
		args  []string
		rest  []string
		flags map[string]string
	}{
		{"subscribe", []string{"chat.lobby", "--json"}, []string{"chat.lobby"}, map[string]string{"json": "true"}},
		{"subscribe", []string{"a", "--after", "3", "b", "-json", "c"}, []string{"a", "b", "c"}, map[string]string{"after": "3", "json": "true"}},
		{"subscribe", []string{"a", "--server=h:1", "b"}, []string{"a", "b"}, map[string]string{"server": "h:1"}},
		{"publish", []string{"room", "--header", "k=v", "hello", "--content-type", "text/plain"}, []string{"room", "hello"},
			map[string]string{"header": "k=v", "content-type": "text/plain"}},
		// "--" ends the flags; "-" alone is an argument.
		{"publish", []string{"room", "--", "--json", "-1"}, []string{"room", "--json", "-1"}, nil},
		{"publish", []string{"--server", "h:2", "room", "-"}, []string{"room", "-"}, map[string]string{"server": "h:2"}},
		// A boolean flag takes no value from the next argument.
		{"subscribe", []string{"--json", "room"}, []string{"room"}, map[string]string{"json": "true"}},
		{"apikey", []string{"--subject", "s", "new", "--publish", ">"}, []string{"new"}, map[string]string{"subject": "s", "publish": ">"}},
	} {
		fs, p, err := parseCmd(t, tc.cmd, tc.args...)
		if err != nil {
			t.Errorf("%s %q: %v", tc.cmd, tc.args, err)
			continue
		}
		if !slices.Equal(p.args, tc.rest) {
			t.Errorf("%s %q: arguments %q, want %q", tc.cmd, tc.args, p.args, tc.rest)
		}
		for name, want := range tc.flags {
			if got := value(t, fs, name); got != want {
				t.Errorf("%s %q: --%s is %q, want %q", tc.cmd, tc.args, name, got, want)
			}
			if p.source(name) != fromFlag {
				t.Errorf("%s %q: --%s comes from %s", tc.cmd, tc.args, name, p.source(name))
			}
		}
	}
}

// writeConfigFile writes a config file and returns its path.
func writeConfigFile(t *testing.T, content string) string {
	t.Helper()
	return writeFile(t, t.TempDir(), "serve.conf", []byte(content))
}

// Flags win over the environment, which wins over the config file, which
// wins over the defaults.
func TestFlagLayers(t *testing.T) {
	file := writeConfigFile(t, `# serve's settings
listen 127.0.0.1:1000          # overridden by the environment
max-rooms 5                    # overridden by a flag
backlog-messages	64
metrics-listen 127.0.0.1:2000  # overridden by the environment, though empty
anonymous-publish "a b # c"
jwt-public-key-file one.pem
--jwt-public-key-file two.pem
allow-anonymous
`)
	t.Setenv("ROOMCAST_LISTEN", "127.0.0.1:3000")
	t.Setenv("ROOMCAST_METRICS_LISTEN", "") // empty, yet set: metrics off
	t.Setenv("ROOMCAST_MAX_ROOMS", "6")
	t.Setenv("ROOMCAST_WRITE_TIMEOUT", "") // empty: unset
	t.Setenv("ROOMCAST_CONFIG", file)
	fs, p, err := parseCmd(t, "serve", "--max-rooms", "7")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][2]string{
		"listen":              {"127.0.0.1:3000", fromEnv},
		"metrics-listen":      {"", fromEnv},
		"max-rooms":           {"7", fromFlag},
		"backlog-messages":    {"64", fromFile},
		"anonymous-publish":   {"a b # c", fromFile},
		"jwt-public-key-file": {"one.pem,two.pem", fromFile},
		"allow-anonymous":     {"true", fromFile},
		"write-timeout":       {"10s", fromDefault},
		"config":              {file, fromEnv},
	} {
		if got := value(t, fs, name); got != want[0] || p.source(name) != want[1] {
			t.Errorf("--%s: %q from %s, want %q from %s", name, got, p.source(name), want[0], want[1])
		}
	}

	// The client commands' flags come from the environment too.
	t.Setenv("ROOMCAST_SERVER", "127.0.0.1:4000")
	t.Setenv("ROOMCAST_JSON", "true")
	fs, p, err = parseCmd(t, "subscribe", "room")
	if err != nil {
		t.Fatal(err)
	}
	if value(t, fs, "server") != "127.0.0.1:4000" || value(t, fs, "json") != "true" || p.source("json") != fromEnv {
		t.Errorf("subscribe: --server %q, --json %q from %s", value(t, fs, "server"), value(t, fs, "json"), p.source("json"))
	}
	t.Setenv("ROOMCAST_SERVER", "") // empty counts as unset
	if fs, _, _ := parseCmd(t, "publish", "r", "m"); value(t, fs, "server") != defaultServer {
		t.Errorf("ROOMCAST_SERVER empty: --server %q, want the default", value(t, fs, "server"))
	}
}

// Every problem with a layer is a usage error that says where it is.
func TestFlagLayerErrors(t *testing.T) {
	ctx := testCtx(t)
	serve := func(env map[string]string, args ...string) (int, string, string) {
		t.Helper()
		for k, v := range env {
			t.Setenv(k, v)
		}
		defer func() {
			for k := range env {
				os.Unsetenv(k)
			}
		}()
		return runCmd(ctx, append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", ""}, args...)...)
	}
	missing := filepath.Join(t.TempDir(), "missing.conf")
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		says []string
	}{
		{"bad variable", map[string]string{"ROOMCAST_MAX_ROOMS": "many"}, nil, []string{`$ROOMCAST_MAX_ROOMS: invalid value "many" for --max-rooms`}},
		{"bad duration variable", map[string]string{"ROOMCAST_DRAIN_TIMEOUT": "10"}, nil, []string{`$ROOMCAST_DRAIN_TIMEOUT: invalid value "10" for --drain-timeout`}},
		{"missing file", nil, []string{"--config", missing}, []string{"--config: open " + missing, "no such file"}},
		{"unknown setting", nil, []string{"--config", writeConfigFile(t, "listen 127.0.0.1:0\n\nmax-romos 5\n")},
			[]string{"line 3: no flag --max-romos"}},
		{"bad value", nil, []string{"--config", writeConfigFile(t, "# limits\nmax-rooms lots\n")}, []string{`line 2: invalid value "lots" for --max-rooms: parse error`}},
		{"unclosed quote", nil, []string{"--config", writeConfigFile(t, "jwt-issuer \"me\n")}, []string{"line 1", "closing quote"}},
		{"config in a config file", nil, []string{"--config", writeConfigFile(t, "config other.conf\n")}, []string{"line 1", "cannot be set in a config file"}},
		{"config on a client command", nil, nil, nil},
	} {
		if tc.says == nil {
			code, _, stderr := runCmd(ctx, "publish", "--config", missing, "r", "m")
			if code != exitUsage || !strings.Contains(stderr, "-config") {
				t.Errorf("%s: exit %d, stderr %q; want a usage error", tc.name, code, stderr)
			}
			continue
		}
		code, stdout, stderr := serve(tc.env, tc.args...)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, serveCmd.helpPointer()) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want a usage error", tc.name, code, stdout, stderr)
		}
		for _, want := range tc.says {
			if !strings.Contains(stderr, want) {
				t.Errorf("%s: stderr %q does not say %q", tc.name, stderr, want)
			}
		}
	}
}

// --print-config prints the settings and where each came from, as a config
// file that reads back to the same settings, with secrets masked, and
// reads none of the files the settings name.
func TestPrintConfig(t *testing.T) {
	ctx := testCtx(t)
	file := writeConfigFile(t, "max-rooms 5\njwt-public-key-file /nonexistent/a.pem\njwt-public-key-file /nonexistent/b.pem\n")
	t.Setenv("ROOMCAST_LISTEN", "127.0.0.1:3000")
	code, stdout, stderr := runCmd(ctx, "serve", "--config", file, "--print-config", "--anonymous-publish", "public.>, news.*",
		"--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem", "--metrics-listen", "")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{
		"# Config file: " + file + "\n",
		"listen 127.0.0.1:3000  # $ROOMCAST_LISTEN\n",
		"max-rooms 5  # config file\n",
		"jwt-public-key-file /nonexistent/a.pem  # config file\njwt-public-key-file /nonexistent/b.pem  # config file\n",
		`anonymous-publish "public.>, news.*"  # flag` + "\n",
		"tls-key /nonexistent/key.pem  # flag\n", // a file's name, not a secret
		`metrics-listen ""  # flag` + "\n",
		"backlog-messages 1024  # default\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--print-config lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "print-config") || strings.Contains(stdout, "\nconfig ") {
		t.Errorf("--print-config prints --config or itself:\n%s", stdout)
	}

	// Read back as a config file, it sets every flag as it was.
	t.Setenv("ROOMCAST_LISTEN", "")
	again, _, err := parseCmd(t, "serve", "--config", writeConfigFile(t, stdout))
	if err != nil {
		t.Fatalf("the printed configuration does not read back: %v\n%s", err, stdout)
	}
	want, _, _ := parseCmd(t, "serve", "--config", file, "--listen", "127.0.0.1:3000", "--anonymous-publish", "public.>, news.*",
		"--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem", "--metrics-listen", "")
	want.VisitAll(func(f *flag.Flag) {
		if f.Name != configFlag && again.Lookup(f.Name).Value.String() != f.Value.String() {
			t.Errorf("--%s read back as %q, want %q", f.Name, again.Lookup(f.Name).Value.String(), f.Value.String())
		}
	})
}

func TestMaskValue(t *testing.T) {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.String("redis-password", "", "the password")
	fs.String("jwt-hmac-secret-file", "", "the secret in `FILE`")
	fs.String("token", "", "send `TOKEN`")
	fs.String("redis-url", "", "connect to `URL`")
	fs.String("listen", "", "serve on `ADDR`")
	for _, tc := range []struct{ flag, value, want string }{
		{"redis-password", "hunter2", masked},
		{"token", "rck_a_b", masked},
		{"jwt-hmac-secret-file", "/etc/roomcast/secret", "/etc/roomcast/secret"},
		{"redis-url", "redis://user:hunter2@cache:6379/0", "redis://user:xxxxx@cache:6379/0"},
		{"redis-url", "redis://cache:6379/0", "redis://cache:6379/0"},
		{"listen", "127.0.0.1:50051", "127.0.0.1:50051"},
		{"redis-password", "", ""},
	} {
		if got := maskValue(fs.Lookup(tc.flag), tc.value); got != tc.want {
			t.Errorf("--%s %q printed as %q, want %q", tc.flag, tc.value, got, tc.want)
		}
	}
}

func TestConfigLine(t *testing.T) {
	for _, tc := range []struct{ line, name, value string }{
		{"", "", ""},
		{"   # a comment", "", ""},
		{"listen 127.0.0.1:1", "listen", "127.0.0.1:1"},
		{"  --listen   127.0.0.1:1   # where", "listen", "127.0.0.1:1"},
		{"listen\t127.0.0.1:1", "listen", "127.0.0.1:1"},
		{"allow-anonymous", "allow-anonymous", "true"},
		{"allow-anonymous false", "allow-anonymous", "false"},
		{`jwt-issuer "a#b c"  # quoted`, "jwt-issuer", "a#b c"},
		{`metrics-listen ""`, "metrics-listen", ""},
		{"anonymous-publish a#b", "anonymous-publish", "a#b"}, // # starts a comment only after a space
	} {
		name, value, err := configLine(tc.line)
		if err != nil || name != tc.name || value != tc.value {
			t.Errorf("%q: %q %q %v, want %q %q", tc.line, name, value, err, tc.name, tc.value)
		}
	}
	for _, line := range []string{`a "b`, `a "b" c`, `a "\q"`} {
		if _, _, err := configLine(line); err == nil {
			t.Errorf("%q: no error", line)
		}
	}
}

// The example config file of docs/operations.md reads as it says.
func TestReadmeConfigExample(t *testing.T) {
	const page = "docs/operations.md"
	doc, err := os.ReadFile("../../" + page)
	if err != nil {
		t.Fatal(err)
	}
	const start = "```\n# /etc/roomcast/serve.conf\n"
	i := strings.Index(string(doc), start)
	if i < 0 {
		t.Fatalf("%s has no block starting %q", page, start)
	}
	block := string(doc[i+len("```\n"):])
	block = block[:strings.Index(block, "```")]
	fs, p, err := parseCmd(t, "serve", "--config", writeConfigFile(t, block))
	if err != nil {
		t.Fatalf("the config file of %s: %v\n%s", page, err, block)
	}
	for name, want := range map[string]string{"listen": "0.0.0.0:50051", "metrics-listen": "", "api-keys-file": "/etc/roomcast/keys.jsonl"} {
		if got := value(t, fs, name); got != want || p.source(name) != fromFile {
			t.Errorf("--%s: %q from %s, want %q from the file", name, got, p.source(name), want)
		}
	}
}
