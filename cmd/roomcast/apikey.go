package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"unicode/utf8"

	"github.com/roomcast/roomcast/auth"
)

// apikeyCmd is "roomcast apikey new".
var apikeyCmd = &command{
	name:    "apikey",
	args:    "new",
	summary: "make an API key for serve --api-keys-file",
	detail: `
Make a new random API key, "rck_<id>_<secret>", for a caller of a server run
with --api-keys-file, with the grants that --publish, --subscribe and
--presence give (comma-separated room patterns: "*" is one segment, a final
">" the rest):

  roomcast apikey new --subject billing --publish 'billing.>' --file keys.jsonl

With --file, it appends the key's entry to the key file (creating it if need
be, and making its mode 0600: serve refuses a key file others may write) and
prints the key on stdout, and nothing else there.
Without --file, it prints the key on stdout and the entry, a line of JSON for
the key file, on stderr. Either way the key is shown this once: the file
holds only its SHA-256. The server reads the key file when it starts and
again on SIGHUP: send it SIGHUP (or restart it) to take a new key, and to
revoke a key, delete its line and send SIGHUP, which ends the key's open
streams.`,
	minArgs: 1,
	maxArgs: 1,
	setup:   setupAPIKey,
}

// setupAPIKey defines apikey's flags.
func setupAPIKey(fs *flag.FlagSet) runFunc {
	cfg := &apikeyConfig{}
	fs.StringVar(&cfg.subject, "subject", "", "name the key's holder `NAME`, as the server logs it and checks refreshes against (required)")
	fs.StringVar(&cfg.publish, "publish", "", "let the key publish to the rooms of `PATTERNS` (comma-separated, such as chat.*,news.>)")
	fs.StringVar(&cfg.subscribe, "subscribe", "", "let the key join the rooms of `PATTERNS` (comma-separated)")
	fs.StringVar(&cfg.presence, "presence", "", "let the key see the presence of the rooms of `PATTERNS` (comma-separated)")
	fs.BoolVar(&cfg.admin, "admin", false, "let the key call AdminService (list rooms and sessions, disconnect sessions, close rooms) and name any session in a publish; it grants no room")
	fs.StringVar(&cfg.note, "note", "", "keep `TEXT` with the entry, for the people who manage the key file")
	fs.StringVar(&cfg.file, "file", "", "append the entry to the API key file `PATH` (created if need be; its mode made 0600) instead of printing it")
	return func(_ context.Context, args []string, stdout, stderr io.Writer) int {
		if args[0] != "new" {
			fmt.Fprintf(stderr, "roomcast apikey: unknown subcommand %q: want new\n", args[0])
			return exitUsage
		}
		return cfg.run(stdout, stderr)
	}
}

// apikeyConfig holds apikey new's flags.
type apikeyConfig struct {
	subject, publish, subscribe, presence, note, file string
	admin                                             bool
}

func (cfg *apikeyConfig) run(stdout, stderr io.Writer) int {
	entry, err := cfg.entry()
	if err != nil {
		fmt.Fprintf(stderr, "roomcast apikey new: %v\n", err)
		return exitUsage
	}
	secret, made, err := auth.NewAPIKey()
	if err != nil {
		fmt.Fprintf(stderr, "roomcast apikey new: %v\n", err)
		return exitFail
	}
	entry.ID, entry.SHA256 = made.ID, made.SHA256
	line, err := entryLine(entry)
	if err != nil {
		fmt.Fprintf(stderr, "roomcast apikey new: %v\n", err)
		return exitFail
	}
	if cfg.file == "" {
		fmt.Fprintln(stdout, secret)
		fmt.Fprintf(stderr, "%s\n", line)
		return exitOK
	}
	if err := appendKeyLine(cfg.file, line); err != nil {
		fmt.Fprintf(stderr, "roomcast apikey new: %v\n", err)
		return exitFail
	}
	fmt.Fprintln(stdout, secret)
	fmt.Fprintf(stderr, "roomcast apikey new: added key %s for subject %q to %s; send the server SIGHUP (or restart it) to use it\n", entry.ID, entry.Subject, cfg.file)
	return exitOK
}

// entry returns the key file entry the flags describe, without id and hash.
// Its errors are usage errors.
func (cfg *apikeyConfig) entry() (auth.APIKeyEntry, error) {
	e := auth.APIKeyEntry{Subject: cfg.subject, Note: cfg.note}
	switch {
	case cfg.subject == "":
		return e, errors.New("--subject is required: it names the key's holder")
	case !utf8.ValidString(cfg.subject) || !utf8.ValidString(cfg.note):
		return e, errors.New("--subject and --note must be valid UTF-8")
	}
	for _, g := range []struct {
		flag, value string
		into        *[]auth.Pattern
	}{
		{"publish", cfg.publish, &e.Grants.Publish},
		{"subscribe", cfg.subscribe, &e.Grants.Subscribe},
		{"presence", cfg.presence, &e.Grants.Presence},
	} {
		pats, err := parsePatternList(g.value)
		if err != nil {
			return e, fmt.Errorf("--%s: %w", g.flag, err)
		}
		*g.into = pats
	}
	e.Grants.Admin = cfg.admin
	if e.Grants.IsZero() {
		return e, errors.New("give --publish, --subscribe, --presence or --admin: a key without grants may do nothing")
	}
	return e, nil
}

// entryLine returns entry as one line of JSON, without the newline, and
// with patterns such as "chat.>" left as they are rather than escaped.
func entryLine(entry auth.APIKeyEntry) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(entry); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// appendKeyLine appends line, a key entry, to the API key file at path,
// creating it with mode 0600, or making an existing file's mode 0600: the
// server refuses a key file that others may write, and nobody else needs to
// read it. It leaves the file as it was when it is not an API key file, or
// would not be one with the line added.
func appendKeyLine(path string, line []byte) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tighten(f); err != nil {
		return err
	}
	content, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	var add []byte
	if len(content) > 0 && content[len(content)-1] != '\n' {
		add = append(add, '\n')
	}
	add = append(append(add, line...), '\n')
	if _, err := auth.ReadAPIKeys(bytes.NewReader(append(content, add...))); err != nil {
		return fmt.Errorf("%s is not an API key file, so it was left as it was: %w", path, err)
	}
	if _, err := f.Write(add); err != nil {
		return err
	}
	return f.Close()
}

// tighten makes f readable and writable by its owner only, unless it is
// already.
func tighten(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Mode().Perm() == 0o600 || runtime.GOOS == "windows" {
		return nil
	}
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("making %s readable and writable by its owner only: %w", f.Name(), err)
	}
	return nil
}
