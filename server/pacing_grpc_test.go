package server

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Over a real connection on loopback: what is published while a busy
// writer holds reaches the subscriber in the response that carries the
// message that woke it.
func TestHeldMessagesShareAResponseOverGRPC(t *testing.T) {
	const bound = 5 * time.Millisecond
	p := newPacedServer(t, bound)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.srv.Serve(lis) }()
	t.Cleanup(func() {
		p.srv.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	stream, err := roomcastv1.NewBrokerServiceClient(conn).Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recv := func() *roomcastv1.SubscribeResponse {
		t.Helper()
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("receiving: %v", err)
		}
		return resp
	}
	recv() // the greeting
	if err := stream.Send(&roomcastv1.SubscribeRequest{Id: "join", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: "r"}}}); err != nil {
		t.Fatal(err)
	}
	if rep := recv().GetReply(); rep.GetId() != "join" || rep.GetError() != nil {
		t.Fatalf("join reply %v", rep)
	}
	publish(t, p.srv, "r", "1")
	if n := len(recv().GetBatch().GetMessages()); n != 1 {
		t.Fatalf("%d messages in the first response, want 1", n)
	}

	var c *outConn
	p.srv.connsMu.Lock()
	for _, oc := range p.srv.conns {
		c = oc
	}
	p.srv.connsMu.Unlock()
	lateWakeUps(t, c)
	second := publish(t, p.srv, "r", "2")
	p.nextHold(t)
	publish(t, p.srv, "r", "3")
	last := publish(t, p.srv, "r", "4")
	p.proceed <- struct{}{}
	msgs := recv().GetBatch().GetMessages()
	if len(msgs) != 3 || msgs[0].GetOffset() != second || msgs[2].GetOffset() != last {
		t.Fatalf("after the hold got %v, want offsets %d to %d in one response", msgs, second, last)
	}
}
