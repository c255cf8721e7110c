// Package interop_test proves the Python and TypeScript clients generated
// from proto/ (gen/python, gen/ts) against the Go server: it runs the
// publishers and subscribers of examples/python and examples/node as
// programs, against servers started in the test, and checks what they print.
//
// The tests need Debian's python3-grpcio and python3-protobuf (for
// /usr/bin/python3) and Node with `npm ci` run at the repository's root.
// Without them they skip, saying what is missing; with CI set they fail
// instead, so that CI cannot pass without running them.
package interop_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// python is the interpreter the examples are documented with: Debian's, which
// sees Debian's python3-grpcio and python3-protobuf. A python3 earlier on
// PATH (pyenv, a virtualenv) may not.
const python = "/usr/bin/python3"

// waitLimit bounds every wait of a test.
const waitLimit = 60 * time.Second

// inCI reports whether the tests run under CI, where a missing runtime is a
// failure rather than a reason to skip.
func inCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if inCI() {
		t.Fatalf("%s (CI is set, so this fails instead of skipping)", msg)
	}
	t.Skip(msg)
}

// repoRoot is the directory holding go.mod.
var repoRoot = sync.OnceValues(func() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, statInputs(dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
})

// statInputs looks at every file the programs the tests run read, so that
// go test's cache, which knows only the files the test itself looks at,
// runs the tests again when one of them changes.
func statInputs(root string) error {
	for _, dir := range []string{"examples", "gen/python", "gen/ts"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Name() == "node_modules" || d.Name() == "__pycache__" {
				return filepath.SkipDir
			}
			_, err = os.Stat(path)
			return err
		})
		if err != nil {
			return err
		}
	}
	_, err := os.Stat(filepath.Join(root, "package-lock.json"))
	return err
}

func root(t *testing.T) string {
	t.Helper()
	dir, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// pythonMissing says what the Python examples lack, or "" if nothing.
var pythonMissing = sync.OnceValue(func() string {
	if _, err := os.Stat(python); err != nil {
		return python + " is missing: apt-get install python3 python3-grpcio python3-protobuf"
	}
	out, err := exec.Command(python, "-c", "import grpc, google.protobuf").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%s cannot import grpc and google.protobuf (%v: %s): apt-get install python3-grpcio python3-protobuf",
			python, err, bytes.TrimSpace(out))
	}
	return ""
})

func requirePython(t *testing.T) {
	t.Helper()
	if msg := pythonMissing(); msg != "" {
		skipOrFail(t, "%s", msg)
	}
}

func requireNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		skipOrFail(t, "node is not on PATH: install Node 20 or later, then run `npm ci` at the repository's root")
	}
	for _, pkg := range []string{"tsx", "typescript", "@connectrpc/connect-node", "@bufbuild/protobuf"} {
		if _, err := os.Stat(filepath.Join(root(t), "node_modules", pkg, "package.json")); err != nil {
			skipOrFail(t, "node_modules has no %s: run `npm ci` at the repository's root", pkg)
		}
	}
}

// lang is a client language with example programs.
type lang struct {
	name    string
	require func(*testing.T)
	// argv runs the example program prog ("publisher" or "subscriber").
	argv func(prog string) []string
}

var (
	pythonLang = lang{"python", requirePython, func(prog string) []string {
		return []string{python, "examples/python/" + prog + ".py"}
	}}
	// node --import tsx rather than the tsx command: the program is then the
	// process itself, so signals reach it directly.
	nodeLang = lang{"node", requireNode, func(prog string) []string {
		return []string{"node", "--import", "tsx", "examples/node/" + prog + ".ts"}
	}}
)

// startServer runs a Go server on a loopback port for the test's duration.
func startServer(t *testing.T, opts ...server.Option) string {
	t.Helper()
	opts = append([]server.Option{server.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	srv, err := server.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String()
}

func dial(t *testing.T, addr string) roomcastv1.BrokerServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return roomcastv1.NewBrokerServiceClient(conn)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// event is one line a subscriber example prints.
type event struct {
	Event     string          `json:"event"`
	Room      string          `json:"room"`
	Offset    string          `json:"offset"`
	Epoch     string          `json:"epoch"`
	Resumed   bool            `json:"resumed"`
	Recovered bool            `json:"recovered"`
	Code      string          `json:"code"`
	Batch     int             `json:"batch"`
	Message   json.RawMessage `json:"message"` // a Message in proto JSON, or the text of a disconnect
	line      string
}

// msg decodes a "message" event's Message.
func (e event) msg(t *testing.T) *roomcastv1.Message {
	t.Helper()
	m := new(roomcastv1.Message)
	if err := protojson.Unmarshal(e.Message, m); err != nil {
		t.Fatalf("decoding %s: %v", e.line, err)
	}
	return m
}

// proc is an example program started by a test.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	lines  chan event // closed at the end of its output
	stderr lockedBuffer
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// command makes a command to run argv from the repository's root, with env
// added to the environment.
func command(t *testing.T, env []string, argv ...string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = root(t)
	// No __pycache__ in gen/python: gen/ must stay what buf generates.
	cmd.Env = append(append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1"), env...)
	return cmd
}

// startProc runs argv from the repository's root until the test ends.
func startProc(t *testing.T, name string, env []string, argv ...string) *proc {
	t.Helper()
	cmd := command(t, env, argv...)
	p := &proc{t: t, name: name, cmd: cmd, lines: make(chan event, 1<<14), exited: make(chan struct{})}
	cmd.Stderr = &p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			ev := event{line: sc.Text()}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev.Event = "unparsable"
			}
			p.lines <- ev
		}
		io.Copy(io.Discard, stdout)
		close(p.lines)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s's stderr:\n%s", name, p.stderr.String())
		}
	})
	return p
}

// stop ends the program: SIGTERM, then SIGKILL if it is still there after
// ten seconds.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGCONT) // in case a test stopped it
	p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		p.t.Errorf("%s did not exit within 10s of SIGTERM", p.name)
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// next returns the next line the program prints.
func (p *proc) next(ctx context.Context) event {
	p.t.Helper()
	select {
	case ev, ok := <-p.lines:
		if !ok {
			<-p.exited
			p.t.Fatalf("%s exited (%v) while the test waited for its output; stderr:\n%s", p.name, p.err, p.stderr.String())
		}
		if ev.Event == "unparsable" {
			p.t.Fatalf("%s printed %q, not a JSON event", p.name, ev.line)
		}
		return ev
	case <-ctx.Done():
		p.t.Fatalf("%s printed nothing more for %v; stderr:\n%s", p.name, waitLimit, p.stderr.String())
		panic("unreachable")
	}
}

// expect returns the next line, which must be an event of kind.
func (p *proc) expect(ctx context.Context, kind string) event {
	p.t.Helper()
	ev := p.next(ctx)
	if ev.Event != kind {
		p.t.Fatalf("%s printed %s, want a %q event", p.name, ev.line, kind)
	}
	return ev
}

// messages returns the next n lines, which must be message events.
func (p *proc) messages(ctx context.Context, n int) []event {
	p.t.Helper()
	evs := make([]event, n)
	for i := range evs {
		evs[i] = p.expect(ctx, "message")
	}
	return evs
}

// startSubscriber runs l's subscriber example on rooms and waits for its
// joins.
func startSubscriber(t *testing.T, ctx context.Context, l lang, addr string, rooms ...string) *proc {
	t.Helper()
	argv := append(l.argv("subscriber"), append([]string{"--server", addr}, rooms...)...)
	p := startProc(t, l.name+" subscriber", nil, argv...)
	for range rooms {
		if ev := p.expect(ctx, "joined"); ev.Resumed || ev.Epoch == "" {
			t.Fatalf("%s: first join %s", p.name, ev.line)
		}
	}
	return p
}

type published struct {
	Offset string `json:"offset"`
	Epoch  string `json:"epoch"`
}

// runPublisher runs l's publisher example to the end and returns the offset
// of each message it published.
func runPublisher(t *testing.T, l lang, args ...string) []uint64 {
	t.Helper()
	cmd := command(t, nil, append(l.argv("publisher"), args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s publisher %q: %v; stderr:\n%s", l.name, args, err, stderr.String())
	}
	var offsets []uint64
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var p published
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("%s publisher printed %q: %v", l.name, line, err)
		}
		off, err := strconv.ParseUint(p.Offset, 10, 64)
		if err != nil || p.Epoch == "" {
			t.Fatalf("%s publisher printed %q", l.name, line)
		}
		offsets = append(offsets, off)
	}
	return offsets
}

// goSubscriber is a Subscribe stream of the Go client generated from the
// same proto, for reference.
type goSubscriber struct {
	t       *testing.T
	stream  grpc.BidiStreamingClient[roomcastv1.SubscribeRequest, roomcastv1.SubscribeResponse]
	pending []*roomcastv1.Message
}

func subscribeGo(t *testing.T, ctx context.Context, addr, room string) *goSubscriber {
	t.Helper()
	stream, err := dial(t, addr).Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&roomcastv1.SubscribeRequest{Id: "j", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: room}}}); err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if rep := resp.GetReply(); rep != nil {
			if rep.GetError() != nil {
				t.Fatalf("join %s: %v", room, rep.GetError())
			}
			return &goSubscriber{t: t, stream: stream}
		}
	}
}

func (s *goSubscriber) next() *roomcastv1.Message {
	s.t.Helper()
	for len(s.pending) == 0 {
		resp, err := s.stream.Recv()
		if err != nil {
			s.t.Fatalf("Go subscriber: %v", err)
		}
		s.pending = resp.GetBatch().GetMessages()
	}
	m := s.pending[0]
	s.pending = s.pending[1:]
	return m
}

// TestPythonPublisherReachesGoAndNode and TestNodePublisherReachesPython:
// what a publisher in one language sends, subscribers in the others get
// with the same bytes, offsets, headers and content type, and decode to the
// very message the Go client decodes.
func TestPythonPublisherReachesGoAndNode(t *testing.T) {
	t.Parallel()
	testPublisher(t, pythonLang, nodeLang)
}

func TestNodePublisherReachesPython(t *testing.T) {
	t.Parallel()
	testPublisher(t, nodeLang, pythonLang)
}

func testPublisher(t *testing.T, pub lang, subs ...lang) {
	pub.require(t)
	for _, l := range subs {
		l.require(t)
	}
	addr := startServer(t)
	ctx := testCtx(t)
	const room = "interop.pubsub"
	goSub := subscribeGo(t, ctx, addr, room)
	var procs []*proc
	for _, l := range subs {
		procs = append(procs, startSubscriber(t, ctx, l, addr, room))
	}

	// Bytes, including ones that are not UTF-8, and text that needs escaping
	// in JSON, each with headers and a content type.
	type sent struct {
		data        []byte
		text        *string
		contentType string
		headers     map[string]string
	}
	rng := rand.New(rand.NewPCG(1, 2))
	binHeaders := map[string]string{"trace-id": "4bf92f3577b34da6", "x.unicode": "héllo ✓ 🎉", "empty": ""}
	args := []string{"--server", addr, "--content-type", "application/octet-stream"}
	for k, v := range binHeaders {
		args = append(args, "--header", k+"="+v)
	}
	args = append(args, "--base64", room)
	var want []sent
	for i := range 20 {
		data := make([]byte, 1+rng.IntN(300))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		data[0] = []byte{0x00, 0xff, 0x80, 0xc3}[i%4] // never valid UTF-8 at the start, for some
		args = append(args, base64.StdEncoding.EncodeToString(data))
		want = append(want, sent{data: data, contentType: "application/octet-stream", headers: binHeaders})
	}
	offsets := runPublisher(t, pub, args...)

	texts := []string{"hello, room", `{"user":"ada","says":"hi \"there\""}`, "line one\nline two\ttab", "unicode: ünïcödé, 中文, emoji 🎉, RTL עברית"}
	textHeaders := map[string]string{"kind": "text"}
	args = []string{"--server", addr, "--content-type", "application/json; charset=utf-8", "--header", "kind=text", room}
	args = append(args, texts...)
	for _, s := range texts {
		want = append(want, sent{text: &s, contentType: "application/json; charset=utf-8", headers: textHeaders})
	}
	offsets = append(offsets, runPublisher(t, pub, args...)...)

	if len(offsets) != len(want) {
		t.Fatalf("the %s publisher printed %d offsets for %d messages", pub.name, len(offsets), len(want))
	}
	for i, off := range offsets {
		if off != uint64(i+1) {
			t.Fatalf("the %s publisher printed offsets %v, want 1 to %d", pub.name, offsets, len(want))
		}
	}

	// The Go subscriber's messages are the reference.
	var ref []*roomcastv1.Message
	for i, w := range want {
		m := goSub.next()
		ref = append(ref, m)
		ok := m.GetRoom() == room && m.GetOffset() == offsets[i] && m.GetContentType() == w.contentType &&
			fmt.Sprint(m.GetHeaders()) == fmt.Sprint(w.headers)
		if w.text != nil {
			_, isText := m.GetPayload().(*roomcastv1.Message_Text)
			ok = ok && isText && m.GetText() == *w.text
		} else {
			_, isData := m.GetPayload().(*roomcastv1.Message_Data)
			ok = ok && isData && bytes.Equal(m.GetData(), w.data)
		}
		if !ok {
			t.Fatalf("Go subscriber got %v for message %d", m, i+1)
		}
	}
	for _, p := range procs {
		for i, ev := range p.messages(ctx, len(want)) {
			if m := ev.msg(t); !proto.Equal(m, ref[i]) {
				t.Errorf("%s got\n%v\nthe Go client got\n%v", p.name, m, ref[i])
			}
		}
	}
}

// TestBatchedResponses: when a subscriber is behind, the server sends many
// messages in one response (one MessageBatch); both languages decode every
// message of every batch.
func TestBatchedResponses(t *testing.T) {
	t.Parallel()
	pythonLang.require(t)
	nodeLang.require(t)
	addr := startServer(t)
	ctx := testCtx(t)
	const room = "interop.batches"
	procs := []*proc{startSubscriber(t, ctx, pythonLang, addr, room), startSubscriber(t, ctx, nodeLang, addr, room)}

	// Stop the subscribers so that the server's writes to them back up and
	// what is published meanwhile goes out in batches; publish quickly, from
	// 8 goroutines; then let them go.
	for _, p := range procs {
		if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	const n, size = 400, 4 << 10 // 1.6 MiB: more than flow control lets through
	c := dial(t, addr)
	var mu sync.Mutex
	payloads := make(map[uint64][]byte, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range n / 8 {
				data := make([]byte, size)
				for j := range data {
					data[j] = byte(rng.Uint32())
				}
				resp, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Data{Data: data}})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				payloads[resp.GetOffset()] = data
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publish: %v", err)
	}
	for _, p := range procs {
		if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}

	for _, p := range procs {
		largest := 0
		for i, ev := range p.messages(ctx, n) {
			m := ev.msg(t)
			if m.GetOffset() != uint64(i+1) || !bytes.Equal(m.GetData(), payloads[m.GetOffset()]) {
				t.Fatalf("%s: message %d has offset %d and %d bytes, want offset %d and the %d bytes published",
					p.name, i+1, m.GetOffset(), len(m.GetData()), i+1, size)
			}
			if ev.Batch < 1 {
				t.Fatalf("%s: message in a batch of %d", p.name, ev.Batch)
			}
			largest = max(largest, ev.Batch)
		}
		t.Logf("%s: %d messages, largest batch %d", p.name, n, largest)
		if largest < 2 {
			t.Errorf("%s: every response carried one message; want batches of several", p.name)
		}
	}
}

// TestResume cuts each subscriber's connection, through a proxy it connects
// by, publishes while it is cut off, and checks that the subscriber rejoins
// with its position and gets exactly the messages it missed; then cuts it
// again and gives it a new server, where its position means nothing, and
// checks that it says so (recovered: false).
func TestResume(t *testing.T) {
	t.Parallel()
	for _, l := range []lang{pythonLang, nodeLang} {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			l.require(t)
			testResume(t, l)
		})
	}
}

func testResume(t *testing.T, l lang) {
	addr := startServer(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	// The server the subscriber moves to at the end, started now so that it
	// outlives the subscriber.
	addr2 := startServer(t)
	px := startProxy(t, addr)
	const room = "interop.resume"
	sub := startSubscriber(t, ctx, l, px.addr(), room)

	payloads := map[uint64]string{}
	publish := func(c roomcastv1.BrokerServiceClient, k int) (first, last uint64) {
		t.Helper()
		for range k {
			text := fmt.Sprintf("message %d", rand.Uint64())
			resp, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: text}})
			if err != nil {
				t.Fatal(err)
			}
			if first == 0 {
				first = resp.GetOffset()
			}
			last = resp.GetOffset()
			payloads[last] = text
		}
		return first, last
	}
	expectMessages := func(first, last uint64) {
		t.Helper()
		for i, ev := range sub.messages(ctx, int(last-first+1)) {
			m := ev.msg(t)
			if want := first + uint64(i); m.GetOffset() != want || m.GetText() != payloads[want] {
				t.Fatalf("%s got offset %d %q, want offset %d %q", sub.name, m.GetOffset(), m.GetText(), want, payloads[want])
			}
		}
	}
	// expectRejoin skips the disconnects the subscriber reports and returns
	// its join.
	expectRejoin := func() event {
		t.Helper()
		for {
			ev := sub.next(ctx)
			switch ev.Event {
			case "disconnected":
				continue
			case "joined":
				if !ev.Resumed || ev.Room != room {
					t.Fatalf("%s rejoined with %s, want a join with a position", sub.name, ev.line)
				}
				return ev
			default:
				t.Fatalf("%s printed %s, want its rejoin", sub.name, ev.line)
			}
		}
	}

	first, last := publish(c, 5)
	expectMessages(first, last)

	// Cut the connection and hold new ones; publish while the subscriber is
	// cut off; then let it reconnect.
	px.cut()
	if ev := sub.expect(ctx, "disconnected"); ev.Code == "OK" {
		t.Errorf("%s: %s", sub.name, ev.line)
	}
	missedFirst, missedLast := publish(c, 10)
	px.resume("")
	join := expectRejoin()
	if !join.Recovered || join.Offset != strconv.FormatUint(missedLast, 10) {
		t.Fatalf("%s rejoined with %s, want recovered at offset %d", sub.name, join.line, missedLast)
	}
	expectMessages(missedFirst, missedLast) // exactly the missed ones: no duplicate of 1 to 5
	first, last = publish(c, 3)
	expectMessages(first, last)
	if n := px.accepted(); n < 2 {
		t.Errorf("the proxy accepted %d connections; the subscriber did not reconnect through it", n)
	}

	// A new server knows nothing of the old epoch: the rejoin says
	// recovered: false, and the subscriber goes on from the room's newest
	// offset there.
	oldEpoch := join.Epoch
	px.cut()
	sub.expect(ctx, "disconnected")
	c2 := dial(t, addr2)
	publish(c2, 2) // lost to the subscriber: it was not there
	px.resume(addr2)
	join = expectRejoin()
	if join.Recovered || join.Epoch == oldEpoch || join.Offset != "2" {
		t.Fatalf("%s joined the new server with %s, want recovered false at offset 2 in a new epoch", sub.name, join.line)
	}
	first, last = publish(c2, 2)
	expectMessages(first, last)
}

// proxy forwards TCP connections to a server, and can cut them all and hold
// new ones until told to go on, to a server of the test's choosing.
type proxy struct {
	lis net.Listener

	mu       sync.Mutex
	backend  string
	holding  bool
	held     []net.Conn
	live     map[net.Conn]bool
	accepts  int
	closed   bool
	routines sync.WaitGroup
}

func startProxy(t *testing.T, backend string) *proxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{lis: lis, backend: backend, live: map[net.Conn]bool{}}
	p.routines.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.lis.Addr().String() }

func (p *proxy) accept() {
	for {
		conn, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.accepts++
		switch {
		case p.closed:
			conn.Close()
		case p.holding:
			p.held = append(p.held, conn)
		default:
			p.forward(conn, p.backend)
		}
		p.mu.Unlock()
	}
}

// forward pipes conn to a new connection to backend. p.mu is held.
func (p *proxy) forward(conn net.Conn, backend string) {
	p.live[conn] = true
	p.routines.Go(func() {
		defer p.drop(conn)
		up, err := net.Dial("tcp", backend)
		if err != nil {
			return // as if the server were down
		}
		if !p.track(up) {
			return
		}
		defer p.drop(up)
		done := make(chan struct{}, 2)
		go func() { io.Copy(up, conn); done <- struct{}{} }()
		go func() { io.Copy(conn, up); done <- struct{}{} }()
		<-done // one direction ended: end both
		conn.Close()
		up.Close()
		<-done
	})
}

// track records a connection that cut must close, unless cut ran since the
// connection it serves was accepted.
func (p *proxy) track(up net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.holding {
		up.Close()
		return false
	}
	p.live[up] = true
	return true
}

func (p *proxy) drop(conn net.Conn) {
	conn.Close()
	p.mu.Lock()
	delete(p.live, conn)
	p.mu.Unlock()
}

// cut closes every forwarded connection, so the streams on them end, and
// holds the connections accepted from now on (not forwarding their bytes)
// until resume.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holding = true
	for conn := range p.live {
		conn.Close()
	}
}

// resume forwards the held connections and those to come, to backend if it
// is not "".
func (p *proxy) resume(backend string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if backend != "" {
		p.backend = backend
	}
	p.holding = false
	for _, conn := range p.held {
		p.forward(conn, p.backend)
	}
	p.held = nil
}

func (p *proxy) accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepts
}

func (p *proxy) close() {
	p.lis.Close()
	p.mu.Lock()
	p.closed = true
	for conn := range p.live {
		conn.Close()
	}
	for _, conn := range p.held {
		conn.Close()
	}
	p.held = nil
	p.mu.Unlock()
	p.routines.Wait()
}

// TestNodeExamplesTypecheck: the TypeScript of examples/node and gen/ts
// compiles with strict checks (tsx, which runs it, does not check types).
func TestNodeExamplesTypecheck(t *testing.T) {
	t.Parallel()
	requireNode(t)
	cmd := command(t, nil, "node", "node_modules/typescript/bin/tsc", "--noEmit", "-p", "examples/node")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, out)
	}
}

// TestExampleReadmes runs the commands of examples/python/README.md and
// examples/node/README.md as written, with $ROOMCAST_SERVER pointing them at
// a test server, and checks that they print what the README shows, but for
// epochs and times.
func TestExampleReadmes(t *testing.T) {
	t.Parallel()
	for _, l := range []lang{pythonLang, nodeLang} {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			l.require(t)
			testExampleReadme(t, "examples/"+l.name+"/README.md")
		})
	}
}

func testExampleReadme(t *testing.T, path string) {
	readme, err := os.ReadFile(filepath.Join(root(t), path))
	if err != nil {
		t.Fatal(err)
	}
	blocks := fencedBlocks(string(readme))
	find := func(lang, needle string) string {
		t.Helper()
		for _, b := range blocks {
			if b.lang == lang && strings.Contains(b.text, needle) {
				return b.text
			}
		}
		t.Fatalf("%s has no %s block with %q", path, lang, needle)
		return ""
	}
	subscribeCmd := strings.TrimSpace(find("sh", "subscriber."))
	publishCmds := find("sh", "publisher.")
	wantPublished := strings.SplitN(strings.TrimSpace(find("json", `{"offset"`)), "\n", 2)[0]
	wantEvents := strings.Split(strings.TrimSpace(find("json", `"event":"joined"`)), "\n")
	if strings.Contains(subscribeCmd, "\n") {
		t.Fatalf("%s: the subscribe block has more than one line:\n%s", path, subscribeCmd)
	}

	addr := startServer(t)
	ctx := testCtx(t)
	env := []string{"ROOMCAST_SERVER=" + addr}
	sub := startProc(t, path+"'s subscriber", env, "sh", "-c", "exec "+subscribeCmd)
	var got []string
	ev := sub.expect(ctx, "joined")
	got = append(got, ev.line)

	cmd := command(t, env, "sh", "-ec", publishCmds)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: the publish commands: %v; stderr:\n%s", path, err, stderr.String())
	}
	if first := strings.SplitN(string(out), "\n", 2)[0]; !sameJSON(t, first, wantPublished) {
		t.Errorf("%s: the publisher printed %s, the README shows %s", path, first, wantPublished)
	}
	for _, ev := range sub.messages(ctx, len(wantEvents)-1) {
		got = append(got, ev.line)
	}
	for i := range wantEvents {
		if !sameJSON(t, got[i], wantEvents[i]) {
			t.Errorf("%s: the subscriber printed\n%s\nthe README shows\n%s", path, got[i], wantEvents[i])
		}
	}
}

type fencedBlock struct{ lang, text string }

// fencedBlocks returns the fenced code blocks of a Markdown text.
func fencedBlocks(md string) []fencedBlock {
	var blocks []fencedBlock
	var cur *fencedBlock
	for _, line := range strings.Split(md, "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &fencedBlock{lang: strings.TrimPrefix(line, "```")}
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	return blocks
}

// sameJSON reports whether two JSON lines are equal but for epochs and
// publish times, which differ from run to run.
func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb map[string]any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Fatalf("%q: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	for _, v := range []map[string]any{va, vb} {
		delete(v, "epoch")
		if m, ok := v["message"].(map[string]any); ok {
			delete(m, "publishTime")
		}
	}
	return reflect.DeepEqual(va, vb)
}
