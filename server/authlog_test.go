package server_test

import (
	"bytes"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// logBuffer is a log output the test reads while the server writes it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the lines logged so far that match re.
func (b *logBuffer) lines(re *regexp.Regexp) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for l := range strings.Lines(b.buf.String()) {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

func logTo(b *logBuffer) server.Option {
	return server.WithLogger(slog.New(slog.NewTextHandler(b, nil)))
}

var refusals = regexp.MustCompile(`msg="(authentication failed|permission denied)"`)

// Refused credentials and permissions are logged with the client's
// address: calls, and a stream's commands.
func TestRefusalsAreLoggedWithThePeer(t *testing.T) {
	var logs logBuffer
	addr := testjwt.StartServer(t, logTo(&logs))
	ctx := testCtx(t)
	c := dial(t, addr)
	later := time.Now().Add(time.Hour)
	tok := testjwt.Token(t, "reader", later, testjwt.Grants(t, "", "news.>", ""))

	publishTextCtx(t, bearer(ctx, testjwt.Token(t, "writer", later, testjwt.Grants(t, "news.>", "", ""))), c, "news.a", "granted: not logged")
	if _, err := c.Publish(bearer(ctx, "not.a.token"), &roomcastv1.PublishRequest{Room: "news.a"}); err == nil {
		t.Fatal("a bad token was accepted")
	}
	if _, err := c.Publish(bearer(ctx, tok), &roomcastv1.PublishRequest{Room: "news.a"}); err == nil {
		t.Fatal("a publish outside the grants was accepted")
	}
	sub := subscribe(t, bearer(ctx, tok), c, "news.a")
	if rep := sub.command(joinReq("j", "sport", nil)); codes.Code(rep.GetError().GetCode()) != codes.PermissionDenied {
		t.Fatalf("join outside the grants: %v", rep)
	}
	if rep := sub.command(refreshReq("r", testjwt.Token(t, "someone-else", later, testjwt.Grants(t, "", "news.>", "")))); codes.Code(rep.GetError().GetCode()) != codes.PermissionDenied {
		t.Fatalf("refresh for another subject: %v", rep)
	}
	if rep := sub.command(refreshReq("r2", "not.a.token")); codes.Code(rep.GetError().GetCode()) != codes.Unauthenticated {
		t.Fatalf("refresh with a bad token: %v", rep)
	}

	peer := `peer=127\.0\.0\.1:\d+`
	want := []*regexp.Regexp{
		regexp.MustCompile(`level=WARN msg="authentication failed" ` + peer + ` rpc=/roomcast\.v1\.BrokerService/Publish err="malformed credentials: `),
		regexp.MustCompile(`level=WARN msg="permission denied" ` + peer + ` rpc=/roomcast\.v1\.BrokerService/Publish err="reader may not publish room \\"news\.a\\""`),
		regexp.MustCompile(`level=WARN msg="permission denied" ` + peer + ` command=join session=` + sub.session + ` subject=reader credential=jwt err="reader may not subscribe room \\"sport\\""`),
		regexp.MustCompile(`level=WARN msg="permission denied" ` + peer + ` command=refresh session=` + sub.session + ` subject=reader credential=jwt err="a refresh must be for the stream's subject`),
		regexp.MustCompile(`level=WARN msg="authentication failed" ` + peer + ` command=refresh session=` + sub.session + ` subject=reader credential=jwt err="malformed credentials`),
	}
	got := logs.lines(refusals)
	if len(got) != len(want) {
		t.Fatalf("logged %d refusals, want %d:\n%s", len(got), len(want), strings.Join(got, ""))
	}
	for i, re := range want {
		if !re.MatchString(got[i]) {
			t.Errorf("refusal %d logged as\n%s\nwant it to match %s", i+1, got[i], re)
		}
	}
}

// At most so many refusals a second are logged; the next line logged says
// how many were left out.
func TestRefusalLogIsRateLimited(t *testing.T) {
	var logs logBuffer
	const perSecond = 5
	addr := testjwt.StartServer(t, logTo(&logs), server.WithAuthFailureLogRate(perSecond))
	ctx := testCtx(t)
	c := dial(t, addr)
	start := time.Now()
	for range 50 {
		if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r"}); err == nil {
			t.Fatal("a publish without a credential was accepted")
		}
	}
	// The burst, and what the rate allowed since.
	if n, most := len(logs.lines(refusals)), perSecond+int(time.Since(start).Seconds()*perSecond)+1; n < perSecond || n > most {
		t.Fatalf("logged %d of 50 refusals in %v; want %d to %d", n, time.Since(start), perSecond, most)
	}
	suppressed := regexp.MustCompile(`suppressed=(\d+)`)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for len(logs.lines(suppressed)) == 0 {
		if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r"}); err == nil {
			t.Fatal("a publish without a credential was accepted")
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("no line says how many were suppressed:\n%s", strings.Join(logs.lines(refusals), ""))
		}
	}
	if m := suppressed.FindStringSubmatch(logs.lines(suppressed)[0]); m[1] == "0" {
		t.Errorf("line %q", m[0])
	}
}

func TestAuthFailureLogRateMustNotBeNegative(t *testing.T) {
	if _, err := server.New(server.WithAuthFailureLogRate(-1)); err == nil || !strings.Contains(err.Error(), "log rate") {
		t.Errorf("New: %v", err)
	}
}
