package server_test

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// A credential that has published more bytes than its rate allows is
// refused, with a retry delay, until it owes nothing: from its headers,
// before the request is read or decoded (no Publish handler starts), and
// on its open PublishStream too. A message larger than the burst passes
// while the credential owes nothing. Another credential is not refused.
func TestPublishedBytesAreRateLimitedPerCredential(t *testing.T) {
	var handled atomic.Int32
	addr := testjwt.StartServer(t, server.WithPublishByteRate(1, 1000),
		server.WithPublishHook(func(*roomcastv1.PublishRequest) { handled.Add(1) }))
	ctx := testCtx(t)
	c := dial(t, addr)
	g := testjwt.Grants(t, "r", "", "")
	a, b := bearer(ctx, testjwt.Token(t, "a", time.Now().Add(time.Hour), g)), bearer(ctx, testjwt.Token(t, "b", time.Now().Add(time.Hour), g))
	stream, err := c.PublishStream(a)
	if err != nil {
		t.Fatal(err)
	}
	big := &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: bytes.Repeat([]byte{1}, 2000)}}
	if _, err := c.Publish(a, big); err != nil {
		t.Fatalf("a message over the burst, owing nothing: %v", err)
	}
	_, err = c.Publish(a, big)
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("a publish while owing 1000 bytes at 1 byte a second: %v, want RESOURCE_EXHAUSTED", err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if d := retry.GetRetryDelay().AsDuration(); d < 900*time.Second {
		t.Errorf("retry delay %v in %v, want the time the debt takes to repay", d, st.Details())
	}
	if n := handled.Load(); n != 1 {
		t.Errorf("%d Publish handlers ran, want 1: the refused call must not be decoded", n)
	}
	if err := stream.Send(&roomcastv1.PublishStreamRequest{Id: "1", Publish: big}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if code := codes.Code(resp.GetError().GetCode()); code != codes.ResourceExhausted {
		t.Errorf("a publish on the owing credential's PublishStream: %v, want RESOURCE_EXHAUSTED", resp)
	}
	publishTextCtx(t, b, c, "r", "another credential owes nothing")
}
