package interop_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// TestReadersControlFramesAreNotPaced: grpcio sends a WINDOW_UPDATE for
// each message it reads, and grpc-js its own; the server paces WINDOW_UPDATE
// and PING frames only past what its writes allow (server/controlframes.go).
// A thousand messages read by each waits for nothing, even at a request
// frame rate that pacing their frames would pass at once.
func TestReadersControlFramesAreNotPaced(t *testing.T) {
	t.Parallel()
	pythonLang.require(t)
	nodeLang.require(t)
	reg := prometheus.NewRegistry()
	addr := startServer(t, server.WithMetrics(reg), server.WithRequestFrameRate(20))
	ctx := testCtx(t)
	const room, n = "interop.readers", 1000 // under the slow-consumer limit: the test reads their output after
	procs := []*proc{startSubscriber(t, ctx, pythonLang, addr, room), startSubscriber(t, ctx, nodeLang, addr, room)}
	c := dial(t, addr)
	data := make([]byte, 1<<10)
	for i := range n {
		if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Data{Data: data}}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	for _, p := range procs {
		for i, ev := range p.messages(ctx, n) {
			if m := ev.msg(t); m.GetOffset() != uint64(i+1) {
				t.Fatalf("%s: message %d has offset %d", p.name, i+1, m.GetOffset())
			}
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "roomcast_request_frames_paced_seconds_total" {
			if w := f.GetMetric()[0].GetCounter().GetValue(); w != 0 {
				t.Fatalf("the readers' frames waited %v s", w)
			}
			return
		}
	}
	t.Fatal("no roomcast_request_frames_paced_seconds_total")
}
