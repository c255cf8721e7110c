package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	"github.com/roomcast/roomcast/client"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// responseCount counts the PublishStream responses a server sends: one
// per request.
type responseCount struct {
	grpc.ServerStream
	n *atomic.Int64
}

func (s responseCount) SendMsg(m any) error {
	if _, ok := m.(*roomcastv1.PublishStreamResponse); ok {
		s.n.Add(1)
	}
	return s.ServerStream.SendMsg(m)
}

// Lines are published in order, one answer line each, a refused line
// failing alone, and in batches: fewer requests than lines; the same input
// with the same key publishes nothing again.
func TestPublishLines(t *testing.T) {
	var requests atomic.Int64
	srv, addr := startServer(t, server.WithGRPCOptions(grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, responseCount{ServerStream: ss, n: &requests})
	})))
	ctx := testCtx(t)
	c, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := c.NewPublisher(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var in, want strings.Builder
	offset := 0
	for i := range 600 { // more than the Publisher's window
		if i == 300 {
			in.WriteString("\xff\n")
			want.WriteString("error: InvalidArgument: text is not valid UTF-8; publish it as data\n")
			continue
		}
		offset++
		fmt.Fprintf(&in, "line %d\n", i)
		fmt.Fprintf(&want, "%d\n", offset)
	}
	for run := range 2 {
		var out bytes.Buffer
		sent, failed, err := publishLines(ctx, p, "r", strings.NewReader(in.String()), &out, "batch", nil)
		if err != nil || sent != 600 || failed != 1 {
			t.Fatalf("run %d: %d sent, %d failed, %v; want 600, 1, nil", run, sent, failed, err)
		}
		if out.String() != want.String() {
			t.Fatalf("run %d printed:\n%s\nwant:\n%s", run, out.String(), want.String())
		}
	}
	t.Logf("%d requests for 1198 lines", requests.Load())
	if n := requests.Load(); n >= 1198 {
		t.Fatalf("%d requests for 1198 lines: the Publisher did not batch", n)
	}
	h, err := srv.History(ctx, &roomcastv1.HistoryRequest{Room: "r", Limit: 1, NewestFirst: true})
	if err != nil || h.GetOffset() != 599 {
		t.Fatalf("the room's offset is %d (%v), want 599: the second run published again", h.GetOffset(), err)
	}
}

// roomcast publish ROOM - and roomcast publish ROOM read standard input.
func TestBinaryPublishesStandardInput(t *testing.T) {
	ctx := testCtx(t)
	bin := buildBinary(t, ctx)
	_, addr := startServer(t, server.WithMaxMessageBytes(10))
	for _, args := range [][]string{{"r", "-"}, {"r"}} {
		cmd := exec.CommandContext(ctx, bin, append([]string{"publish", "--server", addr}, args...)...)
		cmd.Stdin = strings.NewReader("a\nb\nmuch too long\nc")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if code := cmd.ProcessState.ExitCode(); code != 1 {
			t.Fatalf("%q: exit %d (%v), want 1 for the refused line; stderr:\n%s", args, code, err, &stderr)
		}
		lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[2], "error: ResourceExhausted: ") {
			t.Fatalf("%q printed %q", args, out)
		}
	}
}
