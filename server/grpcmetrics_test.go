package server_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// Subscribe streams are not wrapped by go-grpc-middleware's metrics
// interceptor, which would count each response they send on the fan-out's
// hot path; the server's other calls are counted as before, and what
// Subscribe delivers is in roomcast_messages_delivered_total.
func TestSubscribeIsNotInGRPCMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, addr := start(t, server.WithMetrics(reg))
	ctx := testCtx(t)
	c := dial(t, addr)
	s := subscribe(t, ctx, c, "r")
	for range 3 {
		if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: []byte("m")}}); err != nil {
			t.Fatal(err)
		}
		s.next()
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	methods := map[string]map[string]float64{} // metric → grpc_method → value
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "grpc_method" {
					if methods[f.GetName()] == nil {
						methods[f.GetName()] = map[string]float64{}
					}
					methods[f.GetName()][l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	for _, name := range []string{"grpc_server_started_total", "grpc_server_msg_sent_total", "grpc_server_msg_received_total"} {
		if v := methods[name]["Subscribe"]; v != 0 {
			t.Errorf("%s{grpc_method=Subscribe} = %v, want none: Subscribe's stream is not to be wrapped", name, v)
		}
	}
	if v := methods["grpc_server_started_total"]["Publish"]; v != 3 {
		t.Errorf("grpc_server_started_total{grpc_method=Publish} = %v, want 3", v)
	}
	if v := methods["grpc_server_handled_total"]["Publish"]; v != 3 {
		t.Errorf("grpc_server_handled_total{grpc_method=Publish} = %v, want 3", v)
	}
}
