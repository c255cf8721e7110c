package server_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// Subscribe streams are not wrapped by go-grpc-middleware's metrics
// interceptor, which would count each response they send on the fan-out's
// hot path; the server's other calls, streams among them, are counted as
// before, and what Subscribe delivers is in
// roomcast_messages_delivered_total.
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
	ps, err := c.PublishStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ps.Send(&roomcastv1.PublishStreamRequest{Id: "1", Publish: &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: []byte("m")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Recv(); err != nil {
		t.Fatal(err)
	}
	s.next()

	method := func(name string) map[string]string { return map[string]string{"grpc_method": name} }
	for _, name := range []string{"grpc_server_started_total", "grpc_server_msg_sent_total", "grpc_server_msg_received_total"} {
		if v := counterOf(t, reg, name, method("Subscribe")); v != 0 {
			t.Errorf("%s{grpc_method=Subscribe} = %v, want none: Subscribe's stream is not to be wrapped", name, v)
		}
	}
	if v := counterOf(t, reg, "grpc_server_started_total", method("Publish")); v != 3 {
		t.Errorf("grpc_server_started_total{grpc_method=Publish} = %v, want 3", v)
	}
	if v := counterOf(t, reg, "grpc_server_handled_total", map[string]string{"grpc_method": "Publish", "grpc_code": "OK"}); v != 3 {
		t.Errorf("grpc_server_handled_total{grpc_method=Publish,grpc_code=OK} = %v, want 3", v)
	}
	for _, name := range []string{"grpc_server_started_total", "grpc_server_msg_sent_total", "grpc_server_msg_received_total"} {
		if v := counterOf(t, reg, name, method("PublishStream")); v != 1 {
			t.Errorf("%s{grpc_method=PublishStream} = %v, want 1: other streams are wrapped", name, v)
		}
	}
}
