//go:build unix

package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// The grpcurl recipes of the README and the docs pages are fenced ```sh
// blocks, each right after a line <!-- recipe: NAME -->. TestReadmeRecipes
// runs each one as written, with sh, against a test server: grpcurlCmd
// becomes the binary that command would run and readmeAddr the test
// server's address.
const (
	readmeAddr = "127.0.0.1:50051"
	grpcurlCmd = "go tool -modfile=tools/go.mod grpcurl"
)

// recipePages are the files whose recipes TestReadmeRecipes runs, as globs
// relative to the repository's root: the README and every docs page, so
// that a page added to docs/ is checked without being listed here.
var recipePages = []string{"README.md", "docs/*.md"}

// recipeChecks holds a check for every recipe of recipePages, by name.
var recipeChecks = map[string]func(t *testing.T, rc recipeCase){
	"list":         checkList,
	"describe":     checkDescribe,
	"health":       checkHealth,
	"subscribe":    checkSubscribe,
	"publish-text": checkPublish,
	"publish-json": checkPublish,
	"publish-data": checkPublish,
	"history":      checkHistory,
	"resume":       checkSubscribe,
	"presence":     checkPresence,

	// readme_admin_test.go
	"admin-info":       checkAdminInfo,
	"admin-rooms":      checkAdminRooms,
	"admin-room":       checkAdminRoom,
	"admin-sessions":   checkAdminSessions,
	"admin-disconnect": checkAdminDisconnect,
	"admin-close":      checkAdminClose,
}

func TestReadmeRecipes(t *testing.T) {
	recipes, err := readRecipes("..", recipePages)
	if err != nil {
		t.Fatal(err)
	}
	grpcurl, err := grpcurlPath()
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool)
	for _, r := range recipes {
		seen[r.name] = true
		check := recipeChecks[r.name]
		if check == nil {
			t.Errorf("%s:%d: recipe %q has no check in recipeChecks", r.file, r.line, r.name)
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			_, addr := start(t)
			check(t, recipeCase{recipe: r, addr: addr, script: r.shell(t, grpcurl, addr)})
		})
	}
	for name := range recipeChecks {
		if !seen[name] {
			t.Errorf("no page of %q has a recipe %q, which recipeChecks checks", recipePages, name)
		}
	}
}

// recipe is one shell block of a page.
type recipe struct {
	name string
	file string // the page, relative to the repository's root
	line int    // of the block's first command
	text string // the block's content, as on the page
}

var recipeMarker = regexp.MustCompile(`^<!-- recipe: ([a-z0-9-]+) -->$`)

// readRecipes returns the recipes of the pages that match globs under root,
// in the order of globs, then of file names. It refuses a glob that matches
// no page, and a recipe name used twice, on one page or on two.
func readRecipes(root string, globs []string) ([]recipe, error) {
	var (
		recipes []recipe
		where   = make(map[string]string) // recipe name → page:line
	)
	for _, glob := range globs {
		paths, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(glob)))
		if err != nil {
			return nil, err
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("no page matches %q", glob)
		}
		for _, path := range paths {
			name, err := filepath.Rel(root, path)
			if err != nil {
				return nil, err
			}
			name = filepath.ToSlash(name)
			text, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			rs, err := parseRecipes(name, string(text))
			if err != nil {
				return nil, err
			}
			for _, r := range rs {
				if at, ok := where[r.name]; ok {
					return nil, fmt.Errorf("%s:%d: recipe %q appears twice: first at %s", r.file, r.line, r.name, at)
				}
				where[r.name] = fmt.Sprintf("%s:%d", r.file, r.line)
			}
			recipes = append(recipes, rs...)
		}
	}
	return recipes, nil
}

// parseRecipes returns the recipes of one page, file. It refuses a marker
// that is not followed by a ```sh block, a name used twice, and a code block
// that runs grpcurl without a marker (no test would check it).
func parseRecipes(file, page string) ([]recipe, error) {
	var (
		recipes []recipe
		names   = make(map[string]bool)
		marker  string // name of the marker waiting for its block
		markAt  int
		inFence bool
		block   recipe
		body    []string
	)
	for i, line := range strings.Split(page, "\n") {
		n := i + 1
		switch {
		case inFence && strings.TrimSpace(line) == "```":
			inFence = false
			block.text = strings.Join(body, "\n")
			switch {
			case block.name != "":
				recipes = append(recipes, block)
			case strings.Contains(block.text, "grpcurl"):
				return nil, fmt.Errorf("%s:%d: a code block runs grpcurl but has no <!-- recipe: NAME --> line before it, so no test runs it", file, block.line-1)
			}
		case inFence:
			body = append(body, line)
		case marker != "" && strings.TrimSpace(line) == "":
		case marker != "" && line != "```sh":
			return nil, fmt.Errorf("%s:%d: recipe %q is not followed by a ```sh block", file, markAt, marker)
		case strings.HasPrefix(line, "```"):
			inFence, block, body = true, recipe{name: marker, file: file, line: n + 1}, nil
			marker = ""
		default:
			m := recipeMarker.FindStringSubmatch(strings.TrimSpace(line))
			if m == nil {
				continue
			}
			if names[m[1]] {
				return nil, fmt.Errorf("%s:%d: recipe %q appears twice", file, n, m[1])
			}
			names[m[1]] = true
			marker, markAt = m[1], n
		}
	}
	switch {
	case inFence:
		return nil, fmt.Errorf("%s:%d: code block never closed", file, block.line-1)
	case marker != "":
		return nil, fmt.Errorf("%s:%d: recipe %q is not followed by a ```sh block", file, markAt, marker)
	}
	return recipes, nil
}

// shell returns the recipe as a script that runs grpcurl against addr.
func (r recipe) shell(t *testing.T, grpcurl, addr string) string {
	t.Helper()
	if !strings.Contains(r.text, grpcurlCmd) || !strings.Contains(r.text, readmeAddr) {
		t.Fatalf("%s:%d: recipe %q must run %q against %s, so that the test can point it at a test server:\n%s", r.file, r.line, r.name, grpcurlCmd, readmeAddr, r.text)
	}
	quoted := "'" + strings.ReplaceAll(grpcurl, "'", `'\''`) + "'"
	return strings.ReplaceAll(strings.ReplaceAll(r.text, grpcurlCmd, quoted), readmeAddr, addr)
}

// grpcurlPath returns the binary grpcurlCmd runs, built (and cached) by the
// go command from the version tools/go.mod pins. It runs the command from
// the repository's root, as a reader of the README does.
var grpcurlPath = sync.OnceValues(func() (string, error) {
	args := strings.Fields(grpcurlCmd)
	cmd := exec.Command(args[0], append([]string{args[1], "-n"}, args[2:]...)...) // go tool -n -modfile=... grpcurl
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			err = fmt.Errorf("%w: %s", err, exit.Stderr)
		}
		return "", fmt.Errorf("%q: %w", cmd.Args, err)
	}
	path := strings.TrimSpace(string(out))
	if fi, err := os.Stat(path); err != nil || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%q printed %q, which is not an executable file (%v)", cmd.Args, path, err)
	}
	return path, nil
})

// recipeCase is one recipe ready to run against its own test server.
type recipeCase struct {
	recipe
	addr   string // the test server's
	script string // the recipe with grpcurl and addr substituted
}

// command returns sh running the recipe in a process group of its own, so
// that ending ctx signals the whole pipeline, not only sh.
func (rc recipeCase) command(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "sh", "-c", rc.script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// run runs a recipe that ends by itself and returns what it printed.
func (rc recipeCase) run(t *testing.T) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := rc.command(testCtx(t))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("recipe %q: %v\n%s\nstderr:\n%s", rc.name, err, rc.text, stderr.Bytes())
	}
	return stdout.String()
}

func checkList(t *testing.T, rc recipeCase) {
	services := strings.Fields(rc.run(t))
	for _, want := range []string{
		roomcastv1.BrokerService_ServiceDesc.ServiceName,
		healthpb.Health_ServiceDesc.ServiceName,
		"grpc.reflection.v1.ServerReflection",
	} {
		if !slices.Contains(services, want) {
			t.Errorf("list printed %q, want %s among them", services, want)
		}
	}
}

func checkDescribe(t *testing.T, rc recipeCase) {
	out := rc.run(t)
	for _, want := range []string{
		"rpc Publish ( .roomcast.v1.PublishRequest ) returns ( .roomcast.v1.PublishResponse )",
		"rpc Subscribe ( stream .roomcast.v1.SubscribeRequest ) returns ( stream .roomcast.v1.SubscribeResponse )",
		// The proto's comments, which reflection serves from gen/descriptors.
		"// BrokerService delivers messages published to named rooms to every",
		"  // Publish sequences one message into a room and returns its offset.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("describe printed\n%s\nwant it to contain %q", out, want)
		}
	}
}

func checkHealth(t *testing.T, rc recipeCase) {
	var resp healthpb.HealthCheckResponse
	unmarshalOutput(t, rc.run(t), &resp)
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health status %v, want SERVING", resp.GetStatus())
	}
}

// requestData is a recipe's request, the -d argument or what it echoes to
// grpcurl: single-quoted, so sh passes it exactly as it stands on its page.
var requestData = regexp.MustCompile(`(?:-d|echo) '([^']*)'`)

// request decodes the recipe's request into m.
func (rc recipeCase) request(t *testing.T, m proto.Message) {
	t.Helper()
	d := requestData.FindStringSubmatch(rc.text)
	if d == nil {
		t.Fatalf("%s:%d: recipe %q has no -d '...' or echo '...' argument:\n%s", rc.file, rc.line, rc.name, rc.text)
	}
	if err := protojson.Unmarshal([]byte(d[1]), m); err != nil {
		t.Fatalf("%s:%d: recipe %q sends %s, not a %s: %v", rc.file, rc.line, rc.name, d[1], m.ProtoReflect().Descriptor().FullName(), err)
	}
}

// checkPublish runs a publish recipe while a Go client subscribes to the
// room, and checks that the offset printed is that of the message delivered,
// which carries what the recipe sent, in the field it was sent in.
func checkPublish(t *testing.T, rc recipeCase) {
	var req roomcastv1.PublishRequest
	rc.request(t, &req)
	ctx := testCtx(t)
	sub := subscribe(t, ctx, dial(t, rc.addr), req.GetRoom())

	var resp roomcastv1.PublishResponse
	unmarshalOutput(t, rc.run(t), &resp)
	if resp.GetOffset() != 1 || resp.GetEpoch() == "" {
		t.Errorf("printed offset %d and epoch %q, want offset 1 (the room's first message) and an epoch", resp.GetOffset(), resp.GetEpoch())
	}
	msg := sub.next()
	want := &roomcastv1.Message{Room: req.GetRoom(), Offset: resp.GetOffset(), ContentType: req.GetContentType(), Headers: req.GetHeaders()}
	switch p := req.GetPayload().(type) {
	case *roomcastv1.PublishRequest_Text:
		want.Payload = &roomcastv1.Message_Text{Text: p.Text}
	case *roomcastv1.PublishRequest_Data:
		want.Payload = &roomcastv1.Message_Data{Data: p.Data}
	default:
		t.Fatalf("%s:%d: recipe %q publishes no payload", rc.file, rc.line, rc.name)
	}
	msg.PublishTime = nil
	if !proto.Equal(msg, want) {
		t.Errorf("delivered %v, want %v", msg, want)
	}
	if req.GetContentType() == "application/json" && !json.Valid([]byte(req.GetText())) {
		t.Errorf("%s:%d: recipe %q publishes %q as application/json, which is not valid JSON", rc.file, rc.line, rc.name, req.GetText())
	}
}

// checkHistory publishes to the recipe's room and checks that the recipe
// prints the messages it asks for, readable, with the room's offset and epoch.
func checkHistory(t *testing.T, rc recipeCase) {
	var req roomcastv1.HistoryRequest
	rc.request(t, &req)
	ctx := testCtx(t)
	c := dial(t, rc.addr)
	var (
		want  []string // the texts History should return, in order
		epoch string
	)
	const published = 3
	for i := uint64(1); i <= published; i++ {
		text := fmt.Sprintf("message %d", i)
		resp, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: req.GetRoom(), Payload: &roomcastv1.PublishRequest_Text{Text: text}})
		if err != nil {
			t.Fatal(err)
		}
		epoch = resp.GetEpoch()
		if i > req.GetAfter() {
			want = append(want, text)
		}
	}
	if req.GetNewestFirst() {
		slices.Reverse(want)
	}
	if n := int(req.GetLimit()); n > 0 && n < len(want) {
		want = want[:n]
	}

	var resp roomcastv1.HistoryResponse
	unmarshalOutput(t, rc.run(t), &resp)
	var got []string
	for _, m := range resp.GetMessages() {
		got = append(got, m.GetText())
	}
	if !slices.Equal(got, want) || resp.GetOffset() != published || resp.GetEpoch() != epoch {
		t.Errorf("History printed texts %q, offset %d, epoch %q; want %q, %d, %q", got, resp.GetOffset(), resp.GetEpoch(), want, published, epoch)
	}
}

// checkPresence has a Go client join the recipe's room with presence and
// checks that the recipe lists it.
func checkPresence(t *testing.T, rc recipeCase) {
	var req roomcastv1.PresenceRequest
	rc.request(t, &req)
	ctx := testCtx(t)
	sub := subscribe(t, ctx, dial(t, rc.addr))
	info := map[string]string{"name": "ada"}
	if rep := sub.command(&roomcastv1.SubscribeRequest{Id: "1", Command: &roomcastv1.SubscribeRequest_Join{
		Join: &roomcastv1.JoinCommand{Room: req.GetRoom(), Presence: true, Info: info},
	}}); rep.GetError() != nil {
		t.Fatalf("join with presence: %v", rep.GetError())
	}

	var resp roomcastv1.PresenceResponse
	unmarshalOutput(t, rc.run(t), &resp)
	if ms := resp.GetMembers(); resp.GetTotal() != 1 || len(ms) != 1 || ms[0].GetSessionId() != sub.session || !maps.Equal(ms[0].GetInfo(), info) {
		t.Errorf("Presence printed %v, want the one member %s with info %v", &resp, sub.session, info)
	}
}

// checkSubscribe runs a subscribe recipe in the background. grpcurl must
// print the session event and the join reply; for a join with a position,
// the messages after it, published before the recipe started; then, after
// its input has ended, a message published by a Go client, with its text
// readable. The stream does not end by itself: the test ends grpcurl and
// waits for it.
func checkSubscribe(t *testing.T, rc recipeCase) {
	var req roomcastv1.SubscribeRequest
	rc.request(t, &req)
	join := req.GetJoin()
	if join == nil {
		t.Fatalf("%s:%d: recipe %q sends %v, want a join", rc.file, rc.line, rc.name, &req)
	}
	ctx, stop := context.WithCancel(testCtx(t))
	defer stop()
	c := dial(t, rc.addr)

	// With a position, publish two messages past it, for the join to replay.
	var head uint64
	var want []string
	if p := join.GetPosition(); p != nil {
		for head < p.GetOffset()+2 {
			text := fmt.Sprintf("before the join %d", head+1)
			head = publishText(t, ctx, c, join.GetRoom(), text)
			if head > p.GetOffset() {
				want = append(want, text)
			}
		}
	}

	var stderr bytes.Buffer
	cmd := rc.command(ctx) // ending ctx also ends grpcurl, should it hang
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	wait := func() error {
		waited = true
		stop()
		return cmd.Wait()
	}
	defer func() {
		if !waited {
			wait()
		}
	}()

	dec := json.NewDecoder(stdout)
	next := func(what string) (*roomcastv1.SubscribeResponse, string) {
		t.Helper()
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			wait()
			t.Fatalf("waiting for %s from the recipe: %v\nstderr:\n%s", what, err, stderr.Bytes())
		}
		resp := new(roomcastv1.SubscribeResponse)
		if err := protojson.Unmarshal(raw, resp); err != nil {
			t.Fatalf("recipe printed %s, not a SubscribeResponse: %v", raw, err)
		}
		return resp, string(raw)
	}
	// messages returns the next n messages and what the recipe printed.
	messages := func(n int, what string) ([]*roomcastv1.Message, string) {
		t.Helper()
		var msgs []*roomcastv1.Message
		var printed strings.Builder
		for len(msgs) < n {
			resp, raw := next(what)
			if resp.GetBatch() == nil {
				t.Fatalf("waiting for %s, recipe printed %s", what, raw)
			}
			msgs = append(msgs, resp.GetBatch().GetMessages()...)
			printed.WriteString(raw)
		}
		if len(msgs) != n {
			t.Fatalf("waiting for %s, recipe printed %s", what, printed.String())
		}
		return msgs, printed.String()
	}

	if resp, raw := next("the session event"); resp.GetSession().GetSessionId() == "" {
		t.Fatalf("first event %s, want a session", raw)
	}
	resp, raw := next("the join reply")
	reply := resp.GetReply()
	if reply.GetId() != req.GetId() || reply.GetError() != nil || reply.GetJoin().GetRoom() != join.GetRoom() ||
		reply.GetJoin().GetOffset() != head || reply.GetJoin().GetRecovered() != (join.GetPosition() != nil) {
		t.Fatalf("second event %s, want the reply to %v at offset %d", raw, &req, head)
	}
	if len(want) > 0 {
		msgs, raw := messages(len(want), "the messages after the position")
		for i, m := range msgs {
			if m.GetOffset() != join.GetPosition().GetOffset()+uint64(i)+1 || m.GetText() != want[i] {
				t.Fatalf("after the position, recipe printed %s, want %q", raw, want)
			}
		}
	}

	const text = "hello from readme_test"
	off := publishText(t, ctx, c, join.GetRoom(), text)
	msgs, raw := messages(1, "the published message")
	if m := msgs[0]; m.GetRoom() != join.GetRoom() || m.GetOffset() != off || m.GetText() != text {
		t.Errorf("after publishing %q at offset %d, recipe printed %s", text, off, raw)
	}
	if !strings.Contains(raw, strconv.Quote(text)) {
		t.Errorf("recipe printed %s, want the text %q readable in it", raw, text)
	}

	stop()
	if _, err := io.Copy(io.Discard, stdout); err != nil {
		t.Error(err)
	}
	err = wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("recipe ended with %v, want it to run until the test stopped it\nstderr:\n%s", err, stderr.Bytes())
	}
}

// unmarshalOutput decodes what grpcurl printed for a unary call.
func unmarshalOutput(t *testing.T, out string, m proto.Message) {
	t.Helper()
	if err := protojson.Unmarshal([]byte(out), m); err != nil {
		t.Fatalf("recipe printed %q, not a %s: %v", out, m.ProtoReflect().Descriptor().FullName(), err)
	}
}
