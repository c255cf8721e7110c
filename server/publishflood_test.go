package server_test

import (
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// A PublishStream whose publishes are refused pauses its reader before it
// reads on, 1 ms after the first request answered with a refusal, doubling
// for each further one within the second, as a Subscribe stream's reader
// does after a refused command: a publisher flooding one stream past its
// rate is read a few times a second instead of costing a decode and an
// answer per refusal. Request 0's own publish is within the burst; every
// batch is past the rate. The requests are sent one at a time, each after
// the answer to the last.
func TestAPublishStreamPastItsRateIsReadAfterAPause(t *testing.T) {
	pauses := make(chan time.Duration, 16)
	_, addr := start(t, server.WithPublishRate(0.001, 1), server.WithPublishPauseHook(func(d time.Duration) { pauses <- d }))
	ctx := testCtx(t)
	stream, err := dial(t, addr).PublishStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub := &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Text{Text: "x"}}
	const requests = 8
	for i := range requests {
		req := &roomcastv1.PublishStreamRequest{Id: fmt.Sprint(i), Publish: pub,
			Batch: []*roomcastv1.PublishStreamItem{{Id: fmt.Sprint(i, "b"), Publish: pub}}}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if b := resp.GetBatch(); len(b) != 1 || codes.Code(b[0].GetError().GetCode()) != codes.ResourceExhausted {
			t.Fatalf("request %d's batch: %v, want its publish refused past the rate", i, resp)
		}
		if i == 0 && resp.GetOk() == nil {
			t.Fatalf("request 0: %v, want its own publish within the burst", resp)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("the stream ended with %v, want io.EOF after the publisher closed it", err)
	}
	// The handler has returned, after its reader: every pause was taken.
	close(pauses)
	var seen []time.Duration
	for d := range pauses {
		seen = append(seen, d)
	}
	// The reader takes the latest refusal's pause at each read: that of the
	// request before the one it just read, or of that one if the handler
	// answered it first, when the next read finds none. So it pauses at
	// least at every other read, each time for a pause that doubles a
	// previous one.
	if len(seen) < (requests-1)/2 {
		t.Fatalf("pauses %v for %d refused requests, want at least %d", seen, requests, (requests-1)/2)
	}
	for i, d := range seen {
		if n := d / time.Millisecond; d%time.Millisecond != 0 || n&(n-1) != 0 || (i > 0 && d <= seen[i-1]) {
			t.Errorf("pauses %v: want 1 ms doubled, each more than the last", seen)
		}
	}
}
