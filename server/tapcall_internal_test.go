package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A unary Publish that passed the tap's publish rate takes no token again
// in its handler, which reserves its bytes of the byte rate, checking the
// debt again (other calls' bytes may have been charged since the tap's
// check) and charging them in one step: the byte rate's clock is read once
// in the handler. A publish the tap did not see (one made in this
// process, or one of a PublishStream, whose tap leaves no tappedCall) is
// still checked by its handler.
func TestTappedPublishIsCheckedOnce(t *testing.T) {
	s, err := New(WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		WithPublishRate(1000, 2), WithPublishByteRate(1<<20, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	clock, reads := time.Unix(1, 0), 0
	s.access.publishBytes.now = func() time.Time { reads++; return clock }
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}})
	req := &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: make([]byte, 64)}}

	tapped := func(method string) context.Context {
		t.Helper()
		tctx, err := s.tap(ctx, &tap.Info{FullMethodName: method})
		if err != nil {
			t.Fatalf("the tap refused a %s: %v", method, err)
		}
		return tctx
	}
	for i := range 2 { // the publish rate's burst: each call's token is taken once, by the tap
		tctx := tapped(roomcastv1.BrokerService_Publish_FullMethodName)
		c := tappedOf(tctx)
		if c == nil || c.id != s.access.callIdentity(ctx) {
			t.Fatalf("publish %d: the tap handed on %v, want the call's identity", i, c)
		}
		reads = 0
		if _, err := s.publishCall(tctx, req); err != nil {
			t.Fatalf("publish %d within the rates: %v", i, err)
		}
		if reads != 1 {
			t.Errorf("publish %d: its handler read the byte rate's clock %d times, want 1 (its reservation: check and charge in one)", i, reads)
		}
	}
	if _, err := s.tap(ctx, &tap.Info{FullMethodName: roomcastv1.BrokerService_Publish_FullMethodName}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a third publish in the burst of 2: the tap said %v, want RESOURCE_EXHAUSTED", err)
	}

	if c := tappedOf(tapped(roomcastv1.BrokerService_PublishStream_FullMethodName)); c != nil {
		t.Error("a PublishStream's context says the tap checked its publishes")
	}

	// Without the tap, the handler applies them.
	s.access.publishBytes.charge(s.access.callIdentity(ctx), 1<<20+64) // owing 64 bytes: within a tapped call's burst, not an untapped one's nothing
	if _, err := s.Publish(ctx, req); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("an in-process publish owing bytes: %v, want RESOURCE_EXHAUSTED", err)
	}
}

// A server without limits on a method leaves its calls' contexts as they
// are: the tap resolves no identity for them.
func TestTapLeavesUnlimitedCallsAlone(t *testing.T) {
	s, err := New(WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		WithPublishRate(0, 0), WithPublishByteRate(0, 0), WithReadRate(0, 0), WithReadByteRate(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}})
	for _, m := range []string{roomcastv1.BrokerService_Publish_FullMethodName, roomcastv1.BrokerService_History_FullMethodName, roomcastv1.BrokerService_PublishStream_FullMethodName} {
		tctx, err := s.tap(ctx, &tap.Info{FullMethodName: m})
		if err != nil || tctx != ctx {
			t.Errorf("%s without limits: the tap returned %v, %v; want the call's own context", m, tctx, err)
		}
	}
}

// A unary publish is charged to its caller, which the broker is told in
// the publish's options rather than by a context made for it: past its
// owner quota a caller's publishes are refused and another's are not, and
// an idempotency key is its caller's own.
func TestUnaryPublishIsChargedToItsCaller(t *testing.T) {
	s, err := New(WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		WithMaxMessageBytes(2<<10), WithBrokerOptions(broker.WithBacklog(100, 8<<10), broker.WithMaxRetainedBytes(1<<20), broker.WithOwnerQuotas(0, 4<<10), broker.WithHistory(100, time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	as := func(subject string) context.Context {
		ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}})
		return auth.NewContext(ctx, &auth.Identity{Subject: subject, Method: auth.MethodAPIKey})
	}
	publish := func(ctx context.Context, room, key string) (*roomcastv1.PublishResponse, error) {
		return s.Publish(ctx, &roomcastv1.PublishRequest{Room: room, IdempotencyKey: key, Payload: &roomcastv1.PublishRequest_Data{Data: make([]byte, 1000)}})
	}
	for i := 0; ; i++ {
		if i == 10 {
			t.Fatal("mallory published 10 KB past a quota of 4 KiB")
		}
		if _, err := publish(as("mallory"), fmt.Sprint("m", i), ""); err != nil {
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("past mallory's quota: %v, want RESOURCE_EXHAUSTED", err)
			}
			break
		}
	}
	if _, err := publish(as("alice"), "a", ""); err != nil {
		t.Errorf("alice, after mallory's quota is used up: %v", err)
	}
	first, err := publish(as("alice"), "k", "key")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := publish(as("alice"), "k", "key"); err != nil || again.GetOffset() != first.GetOffset() {
		t.Errorf("alice's key again: %v, %v; want offset %d", again, err, first.GetOffset())
	}
	if bob, err := publish(as("bob"), "k", "key"); err != nil || bob.GetOffset() == first.GetOffset() {
		t.Errorf("bob's same key: %v, %v; want a new offset", bob, err)
	}
}
