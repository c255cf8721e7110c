package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"

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
standard base64 encoding. With --json, each message is instead one JSON
object on a line of its own: the Message with its proto field names (room,
offset, text or data, content_type, headers, publish_time,
publisher_session), offsets as strings, data in base64. Once every room is
joined, it logs "subscribed" on stderr.

When the connection is lost (the server restarts, say), it reconnects with
backoff and joins the rooms again from the last message it printed, so that
no message is printed twice or skipped. It logs "disconnected" and then
"reconnected" on stderr, and for each room "rejoined" with recovered=true
when nothing was lost. When messages were lost (the server no longer has
them: it restarted, or they are too old), it says so with a "gap" line on
stderr, or with --json a line {"gap":{"room":...,"last_delivered":{"offset":
...,"epoch":...},"resumed":{...}}} on stdout: the messages after
last_delivered, up to and including resumed, are lost.

It runs until SIGINT or SIGTERM (exit status 0), or until the server refuses
it for good (a credential that expired or is refused, a room outside its
grants), when it logs the reason and exits with status 1.`,
	minArgs: 1,
	maxArgs: -1,
	setup: func(fs *flag.FlagSet) runFunc {
		cfg := &subscribeConfig{}
		cfg.conn.define(fs)
		fs.Var(&cfg.after, "after", "resume the one ROOM after offset `OFFSET` of its current epoch: first print every message after it the room still has, then go on live")
		fs.BoolVar(&cfg.json, "json", false, "print one JSON object per line (see above)")
		return cfg.run
	},
}

type subscribeConfig struct {
	conn  clientFlags
	after offsetFlag
	json  bool
}

// offsetFlag is an optional offset.
type offsetFlag struct {
	set    bool
	offset uint64
}

func (f *offsetFlag) String() string {
	if !f.set {
		return ""
	}
	return strconv.FormatUint(f.offset, 10)
}

func (f *offsetFlag) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("want an offset, a number from 0")
	}
	f.set, f.offset = true, n
	return nil
}

func (cfg *subscribeConfig) run(ctx context.Context, rooms []string, stdout, stderr io.Writer) int {
	log := newLogger(stderr, slog.LevelInfo)
	if cfg.after.set && len(rooms) != 1 {
		fmt.Fprintf(stderr, "roomcast subscribe: --after resumes one room; %d given\n", len(rooms))
		return exitUsage
	}
	c, code := cfg.conn.dial(log, stderr, "subscribe")
	if c == nil {
		return code
	}
	defer c.Close()
	sub, gap, err := cfg.subscribe(ctx, c, rooms)
	if err != nil {
		if ctx.Err() != nil {
			return exitOK // stopped while joining
		}
		log.Error("subscribe failed", "err", err)
		return exitFail
	}
	defer sub.Close()
	log.Info("subscribed", "session", sub.SessionID(), "rooms", strings.Join(rooms, ","))

	p := &printer{out: bufio.NewWriter(stdout), log: log, json: cfg.json}
	if gap != nil {
		p.gap(gap)
	}
	if err := p.out.Flush(); err != nil {
		log.Error("writing", "err", err)
		return exitFail
	}
	for ev, err := range sub.Events() {
		if err != nil {
			if ctx.Err() != nil {
				return exitOK // SIGINT or SIGTERM
			}
			log.Error("subscription ended", "err", err)
			return exitFail
		}
		p.event(ev)
		if err := p.out.Flush(); err != nil { // one line at a time, as it arrives
			log.Error("writing a message", "err", err)
			return exitFail
		}
	}
	return exitOK
}

// subscribe joins the rooms; with --after, the one room from that offset,
// returning the gap if the room no longer has what follows it.
func (cfg *subscribeConfig) subscribe(ctx context.Context, c *client.Client, rooms []string) (*client.Subscription, *client.Gap, error) {
	if !cfg.after.set {
		sub, err := c.Subscribe(ctx, rooms...)
		return sub, nil, err
	}
	sub, err := c.Subscribe(ctx)
	if err != nil {
		return nil, nil, err
	}
	from := client.Position{Offset: cfg.after.offset} // the current epoch
	res, err := sub.Join(ctx, rooms[0], client.ResumeAfter(from))
	if err != nil {
		sub.Close()
		return nil, nil, err
	}
	if res.Recovered {
		return sub, nil, nil
	}
	return sub, &client.Gap{Room: res.Room, LastDelivered: from, Resumed: client.Position{Offset: res.Offset, Epoch: res.Epoch}}, nil
}

// printer writes a subscription's events: messages on out, the rest on log,
// or with json gaps on out too.
type printer struct {
	out  *bufio.Writer
	log  *slog.Logger
	json bool
}

func (p *printer) event(ev *client.Event) {
	switch {
	case ev.Message != nil:
		if p.json {
			p.jsonMessage(ev.Message)
		} else {
			writeMessage(p.out, ev.Message)
		}
	case ev.Gap != nil:
		p.gap(ev.Gap)
	case ev.Disconnected != nil:
		p.log.Warn("disconnected; reconnecting", "err", ev.Disconnected.Err)
	case ev.Reconnected != nil:
		rc := ev.Reconnected
		p.log.Info("reconnected", "session", rc.Session, "attempts", rc.Attempts, "downtime", rc.Downtime.Round(time.Millisecond))
		for _, r := range rc.Rooms {
			p.log.Info("rejoined", "room", r.Room, "recovered", r.Recovered, "after", r.Resumed.Offset, "epoch", r.Resumed.Epoch)
		}
	}
}

func (p *printer) gap(g *client.Gap) {
	if p.json {
		writeJSONGap(p.out, g)
		return
	}
	p.log.Warn("gap: messages lost", "room", g.Room,
		"last_delivered", g.LastDelivered.Offset, "last_epoch", g.LastDelivered.Epoch,
		"resumed_after", g.Resumed.Offset, "epoch", g.Resumed.Epoch)
}

// jsonMessage writes msg as one line of JSON, with proto field names.
// protojson varies its whitespace on purpose; compacting it makes the lines
// stable.
func (p *printer) jsonMessage(msg *client.Message) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(msg)
	if err != nil { // only for invalid UTF-8, which the server refuses
		p.log.Error("encoding a message", "room", msg.GetRoom(), "offset", msg.GetOffset(), "err", err)
		return
	}
	var line bytes.Buffer
	if err := json.Compact(&line, b); err != nil {
		line.Reset()
		line.Write(b)
	}
	line.WriteByte('\n')
	p.out.Write(line.Bytes())
}

// jsonPosition is a position as --json prints it: offsets are strings, as
// protojson prints every 64-bit number.
type jsonPosition struct {
	Offset string `json:"offset"`
	Epoch  string `json:"epoch"`
}

func writeJSONGap(w *bufio.Writer, g *client.Gap) {
	type gap struct {
		Room          string       `json:"room"`
		LastDelivered jsonPosition `json:"last_delivered"`
		Resumed       jsonPosition `json:"resumed"`
	}
	pos := func(p client.Position) jsonPosition {
		return jsonPosition{Offset: strconv.FormatUint(p.Offset, 10), Epoch: p.Epoch}
	}
	b, _ := json.Marshal(struct { // strings only: it cannot fail
		Gap gap `json:"gap"`
	}{gap{Room: g.Room, LastDelivered: pos(g.LastDelivered), Resumed: pos(g.Resumed)}})
	w.Write(b)
	w.WriteByte('\n')
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
