package server

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// pacedStream is a Subscribe stream over loopback gRPC to a pacedServer,
// joined to room "r" and past its first message; conn is its connection's
// writer state.
type pacedStream struct {
	t      *testing.T
	stream grpc.BidiStreamingClient[roomcastv1.SubscribeRequest, roomcastv1.SubscribeResponse]
	conn   *outConn
	served chan error // what Serve returned
}

// subscribePaced serves p on a loopback listener (closed when the test
// ends), subscribes to room "r" and receives its first message.
func subscribePaced(t *testing.T, p *pacedServer) *pacedStream {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ps := &pacedStream{t: t, served: make(chan error, 1)}
	go func() { ps.served <- p.srv.Serve(lis) }()
	t.Cleanup(func() {
		p.srv.Close()
		if err := <-ps.served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)

	ps.stream, err = roomcastv1.NewBrokerServiceClient(conn).Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ps.recv() // the greeting
	if err := ps.stream.Send(&roomcastv1.SubscribeRequest{Id: "join", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: "r"}}}); err != nil {
		t.Fatal(err)
	}
	if rep := ps.recv().GetReply(); rep.GetId() != "join" || rep.GetError() != nil {
		t.Fatalf("join reply %v", rep)
	}
	publish(t, p.srv, "r", "1")
	if n := len(ps.recv().GetBatch().GetMessages()); n != 1 {
		t.Fatalf("%d messages in the first response, want 1", n)
	}
	p.srv.connsMu.Lock()
	for _, oc := range p.srv.conns {
		ps.conn = oc
	}
	p.srv.connsMu.Unlock()
	return ps
}

// recv returns the stream's next response, failing the test at its end.
func (ps *pacedStream) recv() *roomcastv1.SubscribeResponse {
	ps.t.Helper()
	resp, err := ps.stream.Recv()
	if err != nil {
		ps.t.Fatalf("receiving: %v", err)
	}
	return resp
}

// Over a real connection on loopback: what is published while a busy
// writer holds reaches the subscriber in the response that carries the
// message that woke it.
func TestHeldMessagesShareAResponseOverGRPC(t *testing.T) {
	const bound = 5 * time.Millisecond
	p := newPacedServer(t, bound)
	ps := subscribePaced(t, p)
	lateWakeUps(t, ps.conn)
	second := publish(t, p.srv, "r", "2")
	p.nextHold(t)
	publish(t, p.srv, "r", "3")
	last := publish(t, p.srv, "r", "4")
	p.proceed <- struct{}{}
	msgs := ps.recv().GetBatch().GetMessages()
	if len(msgs) != 3 || msgs[0].GetOffset() != second || msgs[2].GetOffset() != last {
		t.Fatalf("after the hold got %v, want offsets %d to %d in one response", msgs, second, last)
	}
}

// A writer holding when the server shuts down stops holding: the drain
// sends what was held and ends the stream, well before the bound, and
// Shutdown returns within its deadline.
func TestShutdownEndsAHold(t *testing.T) {
	const bound = 20 * time.Second // past the shutdown's deadline, and not so long that a failure hangs
	p := newPacedServer(t, bound)
	ps := subscribePaced(t, p)
	lateWakeUps(t, ps.conn)
	second := publish(t, p.srv, "r", "2")
	p.nextHold(t)
	p.proceed <- struct{}{}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- p.srv.Shutdown(ctx) }()
	if msgs := ps.recv().GetBatch().GetMessages(); len(msgs) != 1 || msgs[0].GetOffset() != second {
		t.Fatalf("after the hold got %v, want offset %d", msgs, second)
	}
	if _, err := ps.stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("the drained stream ended with %v, want Unavailable", err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
