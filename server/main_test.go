package server_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs a server on a loopback port for the test's duration.
func start(t testing.TB, opts ...server.Option) (*server.Server, string) {
	t.Helper()
	return servertest.Start(t, opts...)
}

// dial returns a BrokerService client on a connection of its own.
func dial(t testing.TB, addr string) roomcastv1.BrokerServiceClient {
	t.Helper()
	return roomcastv1.NewBrokerServiceClient(servertest.Dial(t, addr))
}

// testCtx is the test's deadline for anything it waits on.
func testCtx(t testing.TB) context.Context { return servertest.Context(t) }

// subscriber is a test's side of a Subscribe stream.
type subscriber struct {
	t       testing.TB
	stream  grpc.BidiStreamingClient[roomcastv1.SubscribeRequest, roomcastv1.SubscribeResponse]
	session string
	pending []*roomcastv1.Message // received but not yet taken
}

func subscribe(t testing.TB, ctx context.Context, c roomcastv1.BrokerServiceClient, rooms ...string) *subscriber {
	t.Helper()
	stream, err := c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := &subscriber{t: t, stream: stream}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if s.session = first.GetSession().GetSessionId(); s.session == "" {
		t.Fatalf("first response is %v, want a session event", first)
	}
	for _, r := range rooms {
		if rep := s.command(&roomcastv1.SubscribeRequest{Id: "join-" + r, Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: r}}}); rep.GetError() != nil {
			t.Fatalf("join %s: %v", r, rep.GetError())
		}
	}
	return s
}

// command sends req and returns its reply, keeping messages that arrive
// before it.
func (s *subscriber) command(req *roomcastv1.SubscribeRequest) *roomcastv1.CommandReply {
	s.t.Helper()
	if err := s.stream.Send(req); err != nil {
		s.t.Fatalf("send %v: %v", req, err)
	}
	for {
		resp, err := s.stream.Recv()
		if err != nil {
			s.t.Fatalf("waiting for the reply to %v: %v", req, err)
		}
		if rep := resp.GetReply(); rep != nil {
			if rep.GetId() != req.GetId() {
				s.t.Fatalf("reply %v to command %q", rep, req.GetId())
			}
			return rep
		}
		s.pending = append(s.pending, resp.GetBatch().GetMessages()...)
	}
}

// next returns the next delivered message.
func (s *subscriber) next() *roomcastv1.Message {
	s.t.Helper()
	m, err := s.recv()
	if err != nil {
		s.t.Fatalf("receiving a message: %v", err)
	}
	return m
}

func (s *subscriber) recv() (*roomcastv1.Message, error) {
	for len(s.pending) == 0 {
		resp, err := s.stream.Recv()
		if err != nil {
			return nil, err
		}
		if resp.GetBatch() == nil {
			return nil, errors.New("unexpected response " + resp.String())
		}
		s.pending = resp.GetBatch().GetMessages()
	}
	m := s.pending[0]
	s.pending = s.pending[1:]
	return m, nil
}

// expectEnd waits for the stream to end and checks its status code.
func (s *subscriber) expectEnd(want codes.Code) *status.Status {
	s.t.Helper()
	for {
		_, err := s.stream.Recv()
		if err == nil {
			continue
		}
		if err == io.EOF {
			s.t.Fatalf("stream ended with OK, want %v", want)
		}
		st := status.Convert(err)
		if st.Code() != want {
			s.t.Fatalf("stream ended with %v, want %v", err, want)
		}
		return st
	}
}

func publishText(t testing.TB, ctx context.Context, c roomcastv1.BrokerServiceClient, room, text string) uint64 {
	t.Helper()
	resp, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: text}})
	if err != nil {
		t.Fatalf("publish to %s: %v", room, err)
	}
	return resp.GetOffset()
}
