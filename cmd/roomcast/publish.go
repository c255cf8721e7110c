package main

import (
	"context"
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

type publishConfig struct {
	conn                               clientFlags
	contentType, session, exclude, key string
	headers                            headerFlag
}

func (cfg *publishConfig) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if code := checkRoomArgs(stderr, "publish", args[:1]); code != exitOK {
		return code
	}
	lines := len(args) == 1 || args[1] == "-"
	if lines && len(cfg.key) > maxKeyPrefix {
		fmt.Fprintf(stderr, "roomcast publish: --idempotency-key is %d bytes long; with standard input the limit is %d\n", len(cfg.key), maxKeyPrefix)
		return exitUsage
	}
	log := newLogger(stderr, slog.LevelInfo)
	c, code := cfg.conn.dial(stderr, "publish")
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
		return cfg.conn.failed(stderr, "publish", err)
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
