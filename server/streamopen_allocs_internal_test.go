package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// ctxStream is a grpc.ServerStream that has only a context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (c *ctxStream) Context() context.Context { return c.ctx }

// Admitting a Subscribe stream of a credential that has streams open
// allocates the stream wrapper and its context value alone: the place is
// counted and given back, however often, without closures or keys (attack
// (d) opens a thousand streams of one credential at once). The place is
// given back once: by the session ending the stream from outside and again
// by the interceptor as the handler returns.
func TestStreamAdmissionAllocations(t *testing.T) {
	s := quietServer(t)
	id := &auth.Identity{Subject: "alice", Method: auth.MethodAPIKey}
	ctx := auth.NewContext(context.Background(), id)
	held, err := s.access.streams.open(id) // the credential's first stream makes its count
	if err != nil {
		t.Fatal(err)
	}
	defer held()
	info := &grpc.StreamServerInfo{FullMethod: roomcastv1.BrokerService_Subscribe_FullMethodName, IsClientStream: true, IsServerStream: true}
	handler := func(_ any, ss grpc.ServerStream) error {
		adm := admissionOf(ss.Context())
		if adm == nil {
			t.Fatal("a counted stream's context carries no admission")
		}
		adm.giveBack() // as endWith does
		return nil
	}
	stream := &ctxStream{ctx: ctx}
	n := testing.AllocsPerRun(200, func() {
		if err := s.admitted(nil, stream, info, handler, nil); err != nil {
			t.Fatal(err)
		}
	})
	if n > 2 {
		t.Errorf("admitting a stream: %v allocations, want at most 2 (the stream and its context value)", n)
	}
	var buf [128]byte
	s.access.streams.mu.Lock()
	open := s.access.streams.n[string(appendCredentialKey(buf[:0], id))].count()
	s.access.streams.mu.Unlock()
	if open != 1 {
		t.Errorf("after the streams ended, the credential has %d open, want 1 (each given back once)", open)
	}
}

// A client's address for the access line and the session list is built in
// one allocation, the string.
func TestPeerAddrAllocations(t *testing.T) {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("2001:db8::1234:5678"), Port: 54321}})
	var addr string
	if n := testing.AllocsPerRun(200, func() { addr = peerAddr(ctx) }); n > 1 {
		t.Errorf("peerAddr: %v allocations, want 1", n)
	}
	if addr != "[2001:db8::1234:5678]:54321" {
		t.Errorf("peerAddr = %q", addr)
	}
}

// A status error's text on the access line is err.Error()'s, built in one
// allocation; other errors' are theirs.
func TestErrorTextAllocations(t *testing.T) {
	wrapped := fmt.Errorf("wrapped: %w", status.Error(codes.Canceled, "gone"))
	for _, err := range []error{
		status.Error(codes.Canceled, "context canceled"),
		status.Error(codes.ResourceExhausted, "this credential has 1 Subscribe streams open"),
		status.Error(codes.Code(99), "an unknown code"),
		wrapped,
		errors.New("plain"),
	} {
		if got, want := errorText(err), err.Error(); got != want {
			t.Errorf("errorText = %q, want %q", got, want)
		}
	}
	err := status.Error(codes.Canceled, "context canceled")
	if n := testing.AllocsPerRun(200, func() { _ = errorText(err) }); n > 1 {
		t.Errorf("errorText of a status error: %v allocations, want 1", n)
	}
}
