package interop_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

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
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // 1-buffered, when made: something was written
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		select {
		case b.changed <- struct{}{}:
		default:
		}
	}
	return b.buf.Write(p)
}

// waitStderr waits until the program's stderr satisfies ok.
func (p *proc) waitStderr(ctx context.Context, what string, ok func(string) bool) {
	p.t.Helper()
	for !ok(p.stderr.String()) {
		select {
		case <-p.stderr.changed:
		case <-ctx.Done():
			p.t.Fatalf("%s's stderr does not say %s within %v:\n%s", p.name, what, waitLimit, p.stderr.String())
		}
	}
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
	p.stderr.changed = make(chan struct{}, 1)
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
