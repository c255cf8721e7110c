package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"
)

var presenceCmd = &command{
	name:    "presence",
	args:    "ROOM",
	summary: "list who is in a room",
	detail: `
List the members of ROOM: the Subscribe sessions that joined it with
presence, oldest joins first, one line each:

	SESSION<TAB>JOIN_TIME<TAB>INFO

INFO is what the member gave as its join's info, as KEY=VALUE pairs
separated by commas. With --json each member is one JSON object per line,
with proto field names (session_id, info, join_time). It logs on stderr how
many members it printed and how many the room has in all.`,
	minArgs: 1,
	maxArgs: 1,
	setup: func(fs *flag.FlagSet) runFunc {
		cfg := &presenceConfig{}
		cfg.conn.define(fs)
		fs.IntVar(&cfg.limit, "limit", 0, "list at most `N` members; 0 for the server's default, 1000 (the server gives at most 10000)")
		fs.BoolVar(&cfg.json, "json", false, "print one JSON object per line")
		return cfg.run
	},
}

type presenceConfig struct {
	conn  clientFlags
	limit int
	json  bool
}

func (cfg *presenceConfig) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	room := args[0]
	if code := checkRoomArgs(stderr, "presence", args); code != exitOK {
		return code
	}
	if cfg.limit < 0 {
		return usageFailure(stderr, "presence", "--limit must not be negative")
	}
	log := newLogger(stderr, slog.LevelInfo)
	c, code := cfg.conn.dial(stderr, "presence")
	if c == nil {
		return code
	}
	defer c.Close()
	list, err := c.Presence(ctx, room, cfg.limit)
	if err != nil {
		return cfg.conn.failed(stderr, "presence", err)
	}
	out := bufio.NewWriter(stdout)
	for _, m := range list.Members {
		if cfg.json {
			writeJSONLine(out, log, m)
			continue
		}
		info := make([]string, 0, len(m.GetInfo()))
		for _, k := range slices.Sorted(maps.Keys(m.GetInfo())) {
			info = append(info, k+"="+m.GetInfo()[k])
		}
		fmt.Fprintf(out, "%s\t%s\t%s\n", m.GetSessionId(), m.GetJoinTime().AsTime().UTC().Format(time.RFC3339Nano), strings.Join(info, ","))
	}
	if err := out.Flush(); err != nil {
		log.Error("writing", "err", err)
		return exitFail
	}
	log.Info("presence", "room", room, "members", len(list.Members), "total", list.Total)
	return exitOK
}
