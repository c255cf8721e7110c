package main

import (
	"bufio"
	"context"
	"flag"
	"io"
	"log/slog"

	"github.com/roomcast/roomcast/client"
)

var historyCmd = &command{
	name:    "history",
	args:    "ROOM",
	summary: "print the messages a room retains",
	detail: `
Print the messages ROOM retains (the server keeps each room's newest
--history-messages for --history-ttl), oldest first, one line each as
subscribe prints them:

	ROOM<TAB>OFFSET<TAB>PAYLOAD

or with --json one JSON object per line. It logs on stderr how many it
printed and the room's newest offset and epoch, which --after of history and
subscribe take.`,
	minArgs: 1,
	maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		cfg := &historyConfig{}
		cfg.conn.define(fs)
		fs.Var(&cfg.after, "after", "print only the messages after offset `OFFSET` of the room's current epoch")
		fs.IntVar(&cfg.limit, "limit", 0, "print at most `N` messages; 0 for the server's default, 100 (the server gives at most 1000)")
		fs.BoolVar(&cfg.newestFirst, "newest-first", false, "print the newest messages, newest first, rather than the oldest")
		fs.BoolVar(&cfg.json, "json", false, "print one JSON object per line, as subscribe --json does")
		return cfg.run
	},
}

type historyConfig struct {
	conn        clientFlags
	after       offsetFlag
	limit       int
	newestFirst bool
	json        bool
}

func (cfg *historyConfig) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	room := args[0]
	if code := checkRoomArgs(stderr, "history", args); code != exitOK {
		return code
	}
	if cfg.limit < 0 {
		return usageFailure(stderr, "history", "--limit must not be negative")
	}
	log := newLogger(stderr, slog.LevelInfo)
	c, code := cfg.conn.dial(stderr, "history")
	if c == nil {
		return code
	}
	defer c.Close()
	page, err := c.History(ctx, room, client.HistoryQuery{After: cfg.after.offset, Limit: cfg.limit, NewestFirst: cfg.newestFirst})
	if err != nil {
		return cfg.conn.failed(stderr, "history", err)
	}
	p := &printer{out: bufio.NewWriter(stdout), log: log, json: cfg.json}
	for _, m := range page.Messages {
		p.event(&client.Event{Message: m})
	}
	if err := p.out.Flush(); err != nil {
		log.Error("writing", "err", err)
		return exitFail
	}
	if cfg.after.set && cfg.after.offset > page.Head.Offset {
		log.Warn(pastHead(room, cfg.after.offset, page.Head), "room", room, "after", cfg.after.offset, "newest_offset", page.Head.Offset, "epoch", page.Head.Epoch)
		return exitOK
	}
	log.Info("history", "room", room, "messages", len(page.Messages), "newest_offset", page.Head.Offset, "epoch", page.Head.Epoch)
	return exitOK
}
