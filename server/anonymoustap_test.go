package server_test

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// On a server without credentials, an anonymous client that owes bytes of
// its publish rate is refused from its call's headers, as a credential is,
// before its request is read or decoded: no Publish handler starts. A
// client whose calls keep being refused, ignoring their advice, has its
// connection paused past the crowded allowance (50 here, for a loaded
// machine), as the tap pauses a credential's. Another client address owes
// nothing.
func TestAnAnonymousClientOwingBytesIsRefusedBeforeItsRequestIsRead(t *testing.T) {
	var handled atomic.Int32
	pauses := make(chan time.Duration, 1)
	_, addr := start(t, server.WithPublishByteRate(1, 1000), server.WithMaxRefusedCalls(0), server.WithCrowdedAllowance(50, 0),
		server.WithPublishHook(func(*roomcastv1.PublishRequest) { handled.Add(1) }),
		server.WithTapPauseHook(func(d time.Duration) {
			select {
			case pauses <- d:
			default:
			}
		}))
	ctx := testCtx(t)
	flood, other := dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.2", addr)
	big := &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: bytes.Repeat([]byte{1}, 2000)}}
	if _, err := flood.Publish(ctx, big); err != nil {
		t.Fatalf("a message over the burst, owing nothing: %v", err)
	}
	for i := 0; ; i++ {
		if _, err := flood.Publish(ctx, big); status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("publish %d while owing bytes: %v, want RESOURCE_EXHAUSTED", i, err)
		}
		if n := handled.Load(); n != 1 {
			t.Fatalf("%d Publish handlers ran, want 1: a refused call must not be read", n)
		}
		select {
		case <-pauses:
		default:
			if i < 5000 {
				continue
			}
			t.Fatalf("%d calls refused, the connection was never paused", i)
		}
		break
	}
	if _, err := other.Publish(ctx, big); err != nil {
		t.Errorf("another client address: %v, want it to owe nothing", err)
	}
}
