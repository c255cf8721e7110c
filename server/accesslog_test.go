package server_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// logLines is a slog.Handler that hands every record to a test, as a map of
// its attributes with "msg" and "level".
type logLines struct {
	ch    chan map[string]string
	level slog.Level
	attrs []slog.Attr
}

func newLogLines(level slog.Level) *logLines {
	return &logLines{ch: make(chan map[string]string, 1000), level: level}
}

func (h *logLines) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h *logLines) WithGroup(string) slog.Handler                { return h }
func (h *logLines) WithAttrs(as []slog.Attr) slog.Handler {
	return &logLines{ch: h.ch, level: h.level, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *logLines) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message, "level": r.Level.String()}
	for _, a := range h.attrs {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	h.ch <- m
	return nil
}

// next returns the next line whose msg is msg, skipping others; it fails
// the test if none comes before the test's deadline.
func (h *logLines) next(t *testing.T, msg string) map[string]string {
	t.Helper()
	ctx := testCtx(t)
	for {
		select {
		case m := <-h.ch:
			if m["msg"] == msg {
				return m
			}
		case <-ctx.Done():
			t.Fatalf("no %q line logged", msg)
		}
	}
}

// none checks that no line with msg was logged so far.
func (h *logLines) none(t *testing.T, msg string) {
	t.Helper()
	for {
		select {
		case m := <-h.ch:
			if m["msg"] == msg {
				t.Errorf("logged %v, want no %q line", m, msg)
			}
		default:
			return
		}
	}
}

func wantFields(t *testing.T, line map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if line[k] != v {
			t.Errorf("access line %v: %s is %q, want %q", line, k, line[k], v)
		}
	}
}

// TestAccessLog checks the access lines of a publish and of a Subscribe
// stream, the level they are logged at (a successful Publish's at debug,
// a stream's at the access log's), and that health checks are left out.
func TestAccessLog(t *testing.T) {
	lines := newLogLines(slog.LevelDebug)
	_, addr := start(t, server.WithLogger(slog.New(lines)), server.WithAccessLog(slog.LevelWarn))
	ctx := testCtx(t)
	c := dial(t, addr)

	publishText(t, ctx, c, "chat.a", "before")
	line := lines.next(t, "finished call")
	wantFields(t, line, map[string]string{"level": "DEBUG", "grpc.service": "roomcast.v1.BrokerService", "grpc.method": "Publish", "grpc.code": "OK", "rooms": "chat.a"})
	if !strings.HasPrefix(line["subject"], "anonymous@127.0.0.1") || !strings.HasPrefix(line["peer.address"], "127.0.0.1:") || line["duration"] == "" {
		t.Errorf("access line %v: want the anonymous subject of 127.0.0.1, its address and a duration", line)
	}

	if _, err := healthpb.NewHealthClient(servertest.Dial(t, addr)).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	lines.none(t, "finished call") // health checks are not logged

	sctx, cancel := context.WithCancel(ctx)
	sub := subscribe(t, sctx, c, "chat.a", "chat.b")
	// With the logger at debug, each command is logged.
	cmd := lines.next(t, "stream command")
	wantFields(t, cmd, map[string]string{"level": "DEBUG", "session": sub.session, "command": "join", "room": "chat.a", "code": "OK"})
	publishText(t, ctx, c, "chat.b", "one")
	publishText(t, ctx, c, "chat.b", "two")
	sub.next()
	sub.next()
	cancel()
	line = lines.next(t, "finished call")
	for line["grpc.method"] == "Publish" {
		line = lines.next(t, "finished call")
	}
	wantFields(t, line, map[string]string{"level": "WARN", "grpc.method": "Subscribe", "grpc.method_type": "bidi_stream", "grpc.code": "Canceled", "session": sub.session, "rooms": "chat.a,chat.b", "messages_sent": "2"})
}

// TestAccessLogLeavesRefusalsToTheRefusalLog checks that calls refused for
// their credential or grants get no access line (the refusal log has
// them), while granted calls do.
func TestAccessLogLeavesRefusalsToTheRefusalLog(t *testing.T) {
	lines := newLogLines(slog.LevelDebug)
	addr := testjwt.StartServer(t, server.WithLogger(slog.New(lines)), server.WithAccessLog(slog.LevelInfo))
	ctx := testCtx(t)
	c := dial(t, addr)
	tok := testjwt.Token(t, "svc", time.Now().Add(time.Hour), testjwt.Grants(t, "chat.*", "", ""))
	if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "chat.a"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("publish without a credential: %v", err)
	}
	if _, err := c.Publish(bearer(ctx, tok), &roomcastv1.PublishRequest{Room: "billing"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("publish outside the grants: %v", err)
	}
	lines.next(t, "authentication failed")
	lines.next(t, "permission denied")
	lines.none(t, "finished call")
	if _, err := c.Publish(bearer(ctx, tok), &roomcastv1.PublishRequest{Room: "chat.a"}); err != nil {
		t.Fatal(err)
	}
	wantFields(t, lines.next(t, "finished call"), map[string]string{"level": "DEBUG", "subject": "svc", "grpc.code": "OK", "rooms": "chat.a"})
}

// TestAccessLogNamesTheAuthenticatedCaller checks the access lines of
// unary calls on a server that authenticates, which are made after the
// call from the identity the tap put in its context: a successful and a
// failed Publish name the token's subject, and the failed one is logged at
// the access log's level with its code.
func TestAccessLogNamesTheAuthenticatedCaller(t *testing.T) {
	lines := newLogLines(slog.LevelDebug)
	addr := testjwt.StartServer(t, server.WithLogger(slog.New(lines)), server.WithAccessLog(slog.LevelInfo))
	ctx := bearer(testCtx(t), testjwt.Token(t, "svc", time.Now().Add(time.Hour), testjwt.Grants(t, "chat.*", "", "")))
	c := dial(t, addr)
	if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "chat.a", Payload: &roomcastv1.PublishRequest_Text{Text: "ok"}}); err != nil {
		t.Fatal(err)
	}
	wantFields(t, lines.next(t, "finished call"), map[string]string{"level": "DEBUG", "subject": "svc", "grpc.method": "Publish", "grpc.code": "OK", "rooms": "chat.a"})
	if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: ""}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("publish to no room: %v, want InvalidArgument", err)
	}
	wantFields(t, lines.next(t, "finished call"), map[string]string{"level": "INFO", "subject": "svc", "grpc.method": "Publish", "grpc.code": "InvalidArgument"})
}

// TestAccessLogPublishLevel checks that a successful unary Publish is
// logged at debug, below an info logger, while a failed one keeps the
// access log's level.
func TestAccessLogPublishLevel(t *testing.T) {
	lines := newLogLines(slog.LevelInfo)
	_, addr := start(t, server.WithLogger(slog.New(lines)), server.WithAccessLog(slog.LevelInfo))
	ctx := testCtx(t)
	c := dial(t, addr)
	publishText(t, ctx, c, "chat.a", "ok")
	if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: ""}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("publish to no room: %v, want InvalidArgument", err)
	}
	// Lines are logged before the answer is sent, in order: the failed
	// publish's is the first.
	line := lines.next(t, "finished call")
	wantFields(t, line, map[string]string{"level": "INFO", "grpc.method": "Publish", "grpc.code": "InvalidArgument"})

	debug := newLogLines(slog.LevelDebug)
	_, addr = start(t, server.WithLogger(slog.New(debug)), server.WithAccessLog(slog.LevelInfo))
	publishText(t, ctx, dial(t, addr), "chat.a", "ok")
	wantFields(t, debug.next(t, "finished call"), map[string]string{"level": "DEBUG", "grpc.method": "Publish", "grpc.code": "OK", "rooms": "chat.a"})
}

// TestAccessLogOff checks that a server logs no access line by default,
// nor after WithoutAccessLog.
func TestAccessLogOff(t *testing.T) {
	for name, opts := range map[string][]server.Option{
		"default":          nil,
		"WithoutAccessLog": {server.WithAccessLog(slog.LevelInfo), server.WithoutAccessLog()},
	} {
		lines := newLogLines(slog.LevelDebug)
		_, addr := start(t, append(opts, server.WithLogger(slog.New(lines)))...)
		ctx := testCtx(t)
		c := dial(t, addr)
		publishText(t, ctx, c, "chat.a", "x")
		sub := subscribe(t, ctx, c, "chat.a")
		publishText(t, ctx, c, "chat.a", "y")
		sub.next()
		t.Run(name, func(t *testing.T) { lines.none(t, "finished call") })
	}
}
