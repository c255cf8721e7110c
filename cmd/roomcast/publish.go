package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/roomcast/roomcast/client"
)

const defaultServer = "127.0.0.1:50051"

var publishCmd = &command{
	name:    "publish",
	args:    "ROOM MESSAGE",
	summary: "publish one text message to a room",
	detail: `
Publish MESSAGE to ROOM as text (the message's text field) and print its
offset in the room, a number on a line of its own.

It makes one attempt: if the outcome is unknown (the connection broke after
the message was sent), it fails rather than risk publishing it twice.`,
	minArgs: 2,
	maxArgs: 2,
	setup: func(fs *flag.FlagSet) runFunc {
		cfg := &publishConfig{headers: headerFlag{}}
		cfg.conn.define(fs)
		fs.StringVar(&cfg.contentType, "content-type", "", "describe the message with media type `TYPE`, such as application/json")
		fs.Var(cfg.headers, "header", "add the application header `KEY=VALUE`; repeat for more")
		fs.StringVar(&cfg.session, "session", "", "name session `ID`, one of your own open Subscribe sessions, as the publisher (Message.publisher_session)")
		fs.StringVar(&cfg.exclude, "exclude-session", "", "deliver to every subscriber but session `ID`, one of your own open Subscribe sessions")
		return cfg.run
	},
}

type publishConfig struct {
	conn                          clientFlags
	contentType, session, exclude string
	headers                       headerFlag
}

func (cfg *publishConfig) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if code := checkRoomArgs(stderr, "publish", args[:1]); code != exitOK {
		return code
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
