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
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

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
		return usageFailure(stderr, "subscribe", fmt.Sprintf("--after resumes one room; %d given", len(rooms)))
	}
	if code := checkRoomArgs(stderr, "subscribe", rooms); code != exitOK {
		return code
	}
	c, code := cfg.conn.dial(stderr, "subscribe")
	if c == nil {
		return code
	}
	defer c.Close()
	sub, gap, err := cfg.subscribeWhenUp(ctx, c, rooms, log)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return exitOK // stopped while joining
		case cfg.after.set && status.Code(err) == codes.OutOfRange:
			return cfg.pastHead(ctx, c, rooms[0], stderr, err)
		}
		return cfg.conn.failed(stderr, "subscribe", err)
	}
	defer sub.Close()
	log.Info("subscribed", "session", sub.SessionID(), "rooms", strings.Join(rooms, ","))

	p := &printer{out: bufio.NewWriter(stdout), log: log, json: cfg.json, explain: cfg.conn.explain}
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
			return cfg.conn.failed(stderr, "subscribe", err)
		}
		p.event(ev)
		if err := p.out.Flush(); err != nil { // one line at a time, as it arrives
			log.Error("writing a message", "err", err)
			return exitFail
		}
	}
	return exitOK
}

// Waits between attempts to reach the server at the start of subscribe.
const (
	firstRetry = 100 * time.Millisecond
	maxRetry   = 5 * time.Second
)

// subscribeWhenUp is subscribe, tried again while nothing listens at the
// server's address (it is not started yet, or restarting), with a line on
// log for each attempt, as the subscription does once it is up.
func (cfg *subscribeConfig) subscribeWhenUp(ctx context.Context, c *client.Client, rooms []string, log *slog.Logger) (*client.Subscription, *client.Gap, error) {
	wait := firstRetry
	for {
		sub, gap, err := cfg.subscribe(ctx, c, rooms)
		if err == nil || !cfg.conn.worthRetrying(err) || ctx.Err() != nil {
			return sub, gap, err
		}
		in := wait/2 + rand.N(wait/2) // jitter, so that many subscribers do not come back at once
		log.Warn("not subscribed yet; retrying", "in", in.Round(time.Millisecond), "err", cfg.conn.explain(err))
		t := time.NewTimer(in)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, maxRetry)
	}
}

// pastHead reports the error of a join with --after past the room's newest
// message, naming that message's offset, and returns exitFail.
func (cfg *subscribeConfig) pastHead(ctx context.Context, c *client.Client, room string, stderr io.Writer, err error) int {
	page, herr := c.History(ctx, room, client.HistoryQuery{NewestFirst: true, Limit: 1})
	if herr != nil { // no history grant, say: the server's own words
		return cfg.conn.failed(stderr, "subscribe", err)
	}
	fmt.Fprintf(stderr, "roomcast subscribe: --after: %s; give an offset up to %d, or no --after to start with the next message\n",
		pastHead(room, cfg.after.offset, page.Head), page.Head.Offset)
	return exitFail
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
	out     *bufio.Writer
	log     *slog.Logger
	json    bool
	explain func(error) string // words an error for the log
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
		p.log.Warn("disconnected; reconnecting", "err", p.explain(ev.Disconnected.Err))
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
func (p *printer) jsonMessage(msg *client.Message) { writeJSONLine(p.out, p.log, msg) }

// writeJSONLine writes m as one line of JSON, with proto field names.
// protojson varies its whitespace on purpose; compacting it makes the lines
// stable.
func writeJSONLine(w *bufio.Writer, log *slog.Logger, m proto.Message) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil { // only for invalid UTF-8, which the server refuses
		log.Error("encoding", "message", m.ProtoReflect().Descriptor().FullName(), "err", err)
		return
	}
	var line bytes.Buffer
	if err := json.Compact(&line, b); err != nil {
		line.Reset()
		line.Write(b)
	}
	line.WriteByte('\n')
	w.Write(line.Bytes())
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
