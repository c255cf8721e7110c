package server_test

import (
	"context"
	"testing"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/redistest"
	"github.com/roomcast/roomcast/server"
)

// Two nodes on a Redis that speaks TLS alone and requires client
// certificates: a message published on one reaches a subscriber of the
// other, over the engine's TLS PUB/SUB connection.
func TestClusterOverTLS(t *testing.T) {
	redis := redistest.Start(t, redistest.WithClientCerts())
	cfg := redisengine.Config{Addrs: []string{redis.Addr}, Prefix: "tlscluster", TLS: redis.TLS.ClientConfig()}
	var nodes []roomcastv1.BrokerServiceClient
	for range 2 {
		_, addr := start(t, server.WithBrokerOptions(broker.WithEngine(redisengine.Factory(context.Background(), cfg))))
		nodes = append(nodes, dial(t, addr))
	}
	ctx := testCtx(t)
	sub := subscribe(t, ctx, nodes[1], "room")
	resp, err := nodes[0].Publish(ctx, &roomcastv1.PublishRequest{Room: "room", Payload: &roomcastv1.PublishRequest_Text{Text: "over TLS"}})
	if err != nil {
		t.Fatal(err)
	}
	if m := sub.next(); m.GetText() != "over TLS" || m.GetOffset() != resp.GetOffset() {
		t.Errorf("the other node's subscriber got %v, want offset %d, %q", m, resp.GetOffset(), "over TLS")
	}
}
