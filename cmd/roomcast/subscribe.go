package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"flag"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/roomcast/roomcast/client"
)

var subscribeCmd = &command{
	name:    "subscribe",
	args:    "ROOM...",
	summary: "print the messages of rooms as they arrive",
	detail: `
Join every ROOM and print each message published to them from then on, one
line per message as it arrives:

	ROOM<TAB>OFFSET<TAB>PAYLOAD

PAYLOAD is a text message as it is (one with a newline spans lines), and a
data message as its bytes if they are valid UTF-8, else "base64:" and their
standard base64 encoding. Once every room is joined, it logs "subscribed"
on stderr.

It runs until SIGINT or SIGTERM (exit status 0), or until the server ends
the stream, when it logs the reason and exits with status 1.`,
	minArgs: 1,
	maxArgs: -1,
	setup: func(fs *flag.FlagSet) runFunc {
		cfg := &subscribeConfig{}
		serverFlag(fs, &cfg.server)
		return cfg.run
	},
}

type subscribeConfig struct {
	server string
}

func (cfg *subscribeConfig) run(ctx context.Context, rooms []string, stdout, stderr io.Writer) int {
	log := newLogger(stderr, slog.LevelInfo)
	c, err := client.Dial(cfg.server)
	if err != nil {
		log.Error("subscribe failed", "err", err)
		return exitFail
	}
	defer c.Close()
	sub, err := c.Subscribe(ctx, rooms...)
	if err != nil {
		if ctx.Err() != nil {
			return exitOK // stopped while joining
		}
		log.Error("subscribe failed", "err", err)
		return exitFail
	}
	defer sub.Close()
	log.Info("subscribed", "session", sub.SessionID(), "rooms", strings.Join(rooms, ","))

	out := bufio.NewWriter(stdout)
	for msg, err := range sub.Messages() {
		if err != nil {
			if ctx.Err() != nil {
				return exitOK // SIGINT or SIGTERM
			}
			log.Error("subscription ended", "err", err)
			return exitFail
		}
		writeMessage(out, msg)
		if err := out.Flush(); err != nil { // one line at a time, as it arrives
			log.Error("writing a message", "err", err)
			return exitFail
		}
	}
	return exitOK
}

// writeMessage writes msg as ROOM<TAB>OFFSET<TAB>PAYLOAD and a newline.
func writeMessage(w *bufio.Writer, msg *client.Message) {
	w.WriteString(msg.GetRoom())
	w.WriteByte('\t')
	w.WriteString(strconv.FormatUint(msg.GetOffset(), 10))
	w.WriteByte('\t')
	if data := msg.GetData(); data != nil {
		if utf8.Valid(data) {
			w.Write(data)
		} else {
			w.WriteString("base64:")
			w.WriteString(base64.StdEncoding.EncodeToString(data))
		}
	} else {
		w.WriteString(msg.GetText())
	}
	w.WriteByte('\n')
}
