package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/loopback"
)

const defaultServer = "127.0.0.1:50051"

var publishCmd = &command{
	name:    "publish",
	args:    "ROOM [MESSAGE | -]",
	summary: "publish text messages to a room",
	detail: `
Publish MESSAGE to ROOM as text (the message's text field) and print its
offset in the room, a number on a line of its own.

Without MESSAGE, or with -, publish each line of standard input as one
message, pipelined on one stream, in the order of the lines, and print one
line per input line, in the same order: the offset, or "error: CODE:
message" for a line the server refused. The exit status is 1 if any line
failed. An interrupt stops the reading; the lines already sent are still
answered.

Without --idempotency-key, each message is sent once: if the outcome is
unknown (the connection broke after the message was sent), it fails rather
than risk publishing it twice. With it, the message is sent again (up to 5
times in all) when the connection breaks before the answer, and the server
sequences it at most once; with standard input,
line N gets the key KEY-N, so running the same input with the same key
again, within the server's window of 5 minutes, publishes only the lines it
had not.`,
	minArgs: 1,
	maxArgs: 2,
	setup: func(fs *flag.FlagSet) runFunc {
		cfg := &publishConfig{headers: headerFlag{}}
		cfg.conn.define(fs)
		fs.StringVar(&cfg.contentType, "content-type", "", "describe the message with media type `TYPE`, such as application/json")
		fs.Var(cfg.headers, "header", "add the application header `KEY=VALUE`; repeat for more")
		fs.StringVar(&cfg.session, "session", "", "name session `ID`, one of your own open Subscribe sessions, as the publisher (Message.publisher_session)")
		fs.StringVar(&cfg.exclude, "exclude-session", "", "deliver to every subscriber but session `ID`, one of your own open Subscribe sessions")
		fs.StringVar(&cfg.key, "idempotency-key", "", "send the message with idempotency key `KEY` (with standard input, KEY-N for line N), so that it can be sent again safely")
		return cfg.run
	},
}

// clientFlags are the connection flags of the client commands.
type clientFlags struct {
	server, token, tlsCA, tlsServerName string
	insecurePlaintextToken              bool
}

// define adds the flags to fs.
func (f *clientFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.server, "server", envOr("ROOMCAST_SERVER", defaultServer),
		"connect to the server at `ADDR` (a gRPC target, such as host:port); also set by $ROOMCAST_SERVER")
	fs.StringVar(&f.token, "token", "",
		"send `TOKEN` (a JWT or an API key) as the bearer credential; $ROOMCAST_TOKEN when not given. Without --tls-ca it is sent only to a loopback --server")
	fs.StringVar(&f.tlsCA, "tls-ca", "",
		"connect with TLS, trusting the CA certificates in the PEM `FILE`; plaintext without it")
	fs.StringVar(&f.tlsServerName, "tls-server-name", "",
		"expect `NAME` in the server's certificate instead of the host of --server; needs --tls-ca")
	fs.BoolVar(&f.insecurePlaintextToken, "insecure-plaintext-token", false,
		"send the token without TLS to a --server that is not loopback, where anyone on the network can read it and use it")
}

// bearerToken is the credential to send: --token, else $ROOMCAST_TOKEN.
func (f *clientFlags) bearerToken() string {
	if f.token != "" {
		return f.token
	}
	return os.Getenv("ROOMCAST_TOKEN")
}

// validate checks that the flags make sense together. Its errors are usage
// errors.
func (f *clientFlags) validate() error {
	switch {
	case f.tlsServerName != "" && f.tlsCA == "":
		return errors.New("--tls-server-name needs --tls-ca: without it the connection is plaintext")
	case f.bearerToken() != "" && f.tlsCA == "" && !f.insecurePlaintextToken && !loopback.Target(f.server):
		return fmt.Errorf("refusing to send the token in plaintext to %s, which is not a loopback address: anyone on the network could read it and use it. "+
			"Connect with TLS (--tls-ca FILE), or on a network you trust add --insecure-plaintext-token", f.server)
	case f.insecurePlaintextToken && f.tlsCA != "":
		return errors.New("--insecure-plaintext-token contradicts --tls-ca: give one or the other")
	}
	return nil
}

// options returns the client options the flags ask for.
func (f *clientFlags) options() ([]client.Option, error) {
	var opts []client.Option
	if f.tlsCA != "" {
		pem, err := os.ReadFile(f.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca: no PEM certificate in %s", f.tlsCA)
		}
		opts = append(opts, client.WithTLS(&tls.Config{RootCAs: pool, ServerName: f.tlsServerName, MinVersion: tls.VersionTLS12}))
	}
	if token := f.bearerToken(); token != "" {
		opts = append(opts, client.WithBearerToken(token))
	}
	if f.insecurePlaintextToken {
		opts = append(opts, client.WithInsecurePlaintextToken())
	}
	return opts, nil
}

// dial validates the flags and connects; on failure it reports why on log
// and returns the exit code.
func (f *clientFlags) dial(log *slog.Logger, stderr io.Writer, cmd string) (*client.Client, int) {
	if err := f.validate(); err != nil {
		fmt.Fprintf(stderr, "roomcast %s: %v\n", cmd, err)
		return nil, exitUsage
	}
	opts, err := f.options()
	if err != nil {
		log.Error(cmd+" failed", "err", err)
		return nil, exitFail
	}
	c, err := client.Dial(f.server, opts...)
	if err != nil {
		log.Error(cmd+" failed", "err", err)
		return nil, exitFail
	}
	return c, exitOK
}

type publishConfig struct {
	conn                               clientFlags
	contentType, session, exclude, key string
	headers                            headerFlag
}

func (cfg *publishConfig) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	lines := len(args) == 1 || args[1] == "-"
	if lines && len(cfg.key) > maxKeyPrefix {
		fmt.Fprintf(stderr, "roomcast publish: --idempotency-key is %d bytes long; with standard input the limit is %d\n", len(cfg.key), maxKeyPrefix)
		return exitUsage
	}
	log := newLogger(stderr, slog.LevelInfo)
	c, code := cfg.conn.dial(log, stderr, "publish")
	if c == nil {
		return code
	}
	defer c.Close()
	opts := []client.PublishOption{client.WithSession(cfg.session), client.WithExcludeSession(cfg.exclude)}
	if cfg.contentType != "" {
		opts = append(opts, client.WithContentType(cfg.contentType))
	}
	if len(cfg.headers) > 0 {
		opts = append(opts, client.WithHeaders(cfg.headers))
	}
	if lines {
		return cfg.publishLines(ctx, c, log, args[0], opts, stdout)
	}
	if cfg.key != "" {
		opts = append(opts, client.WithIdempotencyKey(cfg.key))
	}
	offset, err := c.PublishText(ctx, args[0], args[1], opts...)
	if err != nil {
		log.Error("publish failed", "err", err)
		return exitFail
	}
	if _, err := fmt.Fprintln(stdout, offset); err != nil {
		log.Error("writing the offset", "err", err)
		return exitFail
	}
	return exitOK
}

// headerFlag collects repeated --header KEY=VALUE flags.
type headerFlag map[string]string

func (h headerFlag) String() string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(h)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + h[k])
	}
	return b.String()
}

func (h headerFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return errors.New("want KEY=VALUE")
	}
	h[k] = v
	return nil
}

// publishLines publishes the lines of standard input.
func (cfg *publishConfig) publishLines(ctx context.Context, c *client.Client, log *slog.Logger, room string, opts []client.PublishOption, stdout io.Writer) int {
	p, err := c.NewPublisher(context.WithoutCancel(ctx))
	if err != nil {
		log.Error("publish failed", "err", err)
		return exitFail
	}
	defer p.Close()
	sent, failed, err := publishLines(ctx, p, room, os.Stdin, stdout, cfg.key, opts)
	switch {
	case err != nil:
		log.Error("publish failed", "err", err, "lines", sent, "failed", failed)
		return exitFail
	case failed > 0:
		log.Error("some lines were not published", "lines", sent, "failed", failed)
		return exitFail
	}
	return exitOK
}
