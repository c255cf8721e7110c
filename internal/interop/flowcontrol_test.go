package interop_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// TestReadersControlFramesAreNotPaced: grpcio (Python) and connect-node
// send WINDOW_UPDATE and PING frames as they read; the server paces them
// only past what its writes allow (server/controlframes.go). A thousand
// messages read by each waits for nothing, even at a request frame rate
// that pacing their frames would soon pass.
func TestReadersControlFramesAreNotPaced(t *testing.T) {
	t.Parallel()
	pythonLang.require(t)
	nodeLang.require(t)
	reg := prometheus.NewRegistry()
	addr := startServer(t, server.WithMetrics(reg), server.WithRequestFrameRate(20))
	ctx := testCtx(t)
	const room, n = "interop.readers", 1000 // under the slow-consumer limit: the test reads their output after
	procs := []*proc{startSubscriber(t, ctx, pythonLang, addr, room), startSubscriber(t, ctx, nodeLang, addr, room)}
	waited := func() float64 {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() == "roomcast_request_frames_paced_seconds_total" {
				return f.GetMetric()[0].GetCounter().GetValue()
			}
		}
		t.Fatal("no roomcast_request_frames_paced_seconds_total")
		return 0
	}
	c := dial(t, addr)
	data := make([]byte, 1<<10)
	for i := range n {
		if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Data{Data: data}}); err != nil {
			t.Fatalf("publish %d: %v (reads paced %v s)", i, err, waited())
		}
		if i%100 == 0 {
			if w := waited(); w != 0 {
				t.Fatalf("after %d messages, reads waited %v s", i, w)
			}
		}
	}
	for _, p := range procs {
		for i, ev := range p.messages(ctx, n) {
			if m := ev.msg(t); m.GetOffset() != uint64(i+1) {
				t.Fatalf("%s: message %d has offset %d", p.name, i+1, m.GetOffset())
			}
		}
	}
	if w := waited(); w != 0 {
		t.Fatalf("the readers' frames waited %v s", w)
	}
}
