package server_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// Large publishes, of the in-place decoder and of the pooled one, wait
// for their turns, each take one and arrive whole; small ones take none.
func TestLargePublishesTakeTurns(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, addr := start(t, server.WithMetrics(reg))
	c := dial(t, addr)
	ctx := testCtx(t)
	reqs := make([]*roomcastv1.PublishRequest, 6)
	for i := range reqs {
		size := server.DefaultLargeRequestTurn + i*40<<10
		if i%2 == 0 {
			reqs[i] = &roomcastv1.PublishRequest{Room: fmt.Sprintf("large.%d", i), Payload: &roomcastv1.PublishRequest_Data{Data: bytes.Repeat([]byte{byte('a' + i)}, size)}}
		} else {
			reqs[i] = &roomcastv1.PublishRequest{Room: fmt.Sprintf("large.%d", i), Payload: &roomcastv1.PublishRequest_Text{Text: string(bytes.Repeat([]byte{byte('a' + i)}, size))}}
		}
	}
	release, err := server.HoldLargeTurn(s)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(reqs))
	for i, req := range reqs {
		wg.Go(func() { _, errs[i] = c.Publish(ctx, req) })
	}
	pollMetric(t, ctx, reg, "roomcast_large_requests_waiting", true, float64(len(reqs)))
	release()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	publishText(t, ctx, c, "small", "not a turn")
	for i, req := range reqs {
		h, err := c.History(ctx, &roomcastv1.HistoryRequest{Room: req.Room})
		if err != nil {
			t.Fatal(err)
		}
		if len(h.GetMessages()) != 1 {
			t.Fatalf("room %s holds %d messages, want 1", req.Room, len(h.GetMessages()))
		}
		m := h.GetMessages()[0]
		if !bytes.Equal(m.GetData(), req.GetData()) || m.GetText() != req.GetText() {
			t.Fatalf("message %d arrived changed", i)
		}
	}
	if got := metricValue(t, reg, "roomcast_large_request_turns_total", false); got != float64(len(reqs)+1) {
		t.Errorf("roomcast_large_request_turns_total = %v, want %d (the test's and the publishes')", got, len(reqs)+1)
	}
	if got := metricValue(t, reg, "roomcast_large_request_wait_seconds_total", false); got <= 0 {
		t.Errorf("roomcast_large_request_wait_seconds_total = %v after %d large publishes waited, want more than 0", got, len(reqs))
	}
	if got := metricValue(t, reg, "roomcast_large_requests_waiting", true); got != 0 {
		t.Errorf("roomcast_large_requests_waiting = %v once every publish returned, want 0", got)
	}
}

// A large publish waits for its turn while its call lasts: past its
// deadline it ends with DEADLINE_EXCEEDED, having published nothing, and
// the next one publishes once the turn is free.
func TestALargePublishWaitsForItsTurnWhileItsCallLasts(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, addr := start(t, server.WithMetrics(reg))
	c := dial(t, addr)
	ctx := testCtx(t)
	release, err := server.HoldLargeTurn(s)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, server.DefaultLargeRequestTurn)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = c.Publish(short, &roomcastv1.PublishRequest{Room: "waits", Payload: &roomcastv1.PublishRequest_Data{Data: data}})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("publish while the turn is held: %v, want DEADLINE_EXCEEDED", err)
	}
	publishText(t, ctx, c, "small", "small publishes take no turn")
	pollMetric(t, ctx, reg, "roomcast_large_request_turns_abandoned_total", false, 1)
	release()
	if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "waits", Payload: &roomcastv1.PublishRequest_Data{Data: data}}); err != nil {
		t.Fatalf("publish once the turn is free: %v", err)
	}
	h, err := c.History(ctx, &roomcastv1.HistoryRequest{Room: "waits"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(h.GetMessages()); n != 1 {
		t.Fatalf("room holds %d messages, want 1: the publish past its deadline published nothing", n)
	}
}

// A PublishStream's large request waits for its turn while its stream
// lasts.
func TestALargeStreamRequestWaitsWhileItsStreamLasts(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, addr := start(t, server.WithMetrics(reg))
	c := dial(t, addr)
	ctx := testCtx(t)
	release, err := server.HoldLargeTurn(s)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.PublishStream(sctx)
	if err != nil {
		t.Fatal(err)
	}
	req := &roomcastv1.PublishStreamRequest{Id: "1", Publish: &roomcastv1.PublishRequest{Room: "streamed", Payload: &roomcastv1.PublishRequest_Data{Data: make([]byte, server.DefaultLargeRequestTurn)}}}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	pollMetric(t, ctx, reg, "roomcast_large_requests_waiting", true, 1)
	cancel()
	pollMetric(t, ctx, reg, "roomcast_large_request_turns_abandoned_total", false, 1)
	pollMetric(t, ctx, reg, "roomcast_large_requests_waiting", true, 0)
}

// pollMetric waits until the metric name of reg reaches want, failing the
// test when ctx ends first.
func pollMetric(t *testing.T, ctx context.Context, reg *prometheus.Registry, name string, gauge bool, want float64) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for metricValue(t, reg, name, gauge) != want {
		select {
		case <-ctx.Done():
			t.Fatalf("%s = %v, want %v", name, metricValue(t, reg, name, gauge), want)
		case <-tick.C:
		}
	}
}

// Turned off, a large publish does not wait.
func TestLargeRequestTurnsOff(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, addr := start(t, server.WithMetrics(reg), server.WithLargeRequestTurns(0))
	c := dial(t, addr)
	ctx := testCtx(t)
	if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: make([]byte, 1<<20-2<<10)}}); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "roomcast_large_request_turns_total" {
			t.Fatal("turns are counted with turns off")
		}
	}
}
