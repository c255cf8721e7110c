package client_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/broker/redisengine"
	"github.com/roomcast/roomcast/client"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/redistest"
	"github.com/roomcast/roomcast/internal/testsupport/faultproxy"
	"github.com/roomcast/roomcast/server"
)

// keyedCluster is two nodes on one Redis, and a proxy to the first that,
// once armed, cuts the connection of the first publish the first node
// sequences, before its answer is sent, and sends the client's reconnect to
// the second node: the client cannot know whether its message was stored.
type keyedCluster struct {
	proxy *faultproxy.Proxy
	addrs []string
	armed atomic.Bool
	once  sync.Once
}

func startKeyedCluster(t *testing.T) *keyedCluster {
	t.Helper()
	kc := &keyedCluster{}
	redis := redistest.Start(t)
	cfg := redisengine.Config{Addrs: []string{redis.Addr}, Prefix: "clientkeys"}
	cut := func() {
		if kc.armed.Load() {
			kc.once.Do(func() {
				kc.proxy.Hold()
				kc.proxy.Sever()
				kc.proxy.Resume(kc.addrs[1])
			})
		}
	}
	first := server.WithGRPCOptions(
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			resp, err := handler(ctx, req)
			if _, ok := req.(*roomcastv1.PublishRequest); ok && err == nil {
				cut()
			}
			return resp, err
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			return handler(srv, &cuttingStream{ServerStream: ss, cut: cut})
		}))
	for i := range 2 {
		opts := []server.Option{server.WithBrokerOptions(broker.WithEngine(redisengine.Factory(context.Background(), cfg)))}
		if i == 0 {
			opts = append(opts, first)
		}
		_, addr := start(t, opts...)
		kc.addrs = append(kc.addrs, addr)
	}
	kc.proxy = faultproxy.Start(t, kc.addrs[0])
	return kc
}

// cuttingStream cuts the connection before it sends a publish's answer.
type cuttingStream struct {
	grpc.ServerStream
	cut func()
}

func (s *cuttingStream) SendMsg(m any) error {
	if _, ok := m.(*roomcastv1.PublishStreamResponse); ok {
		s.cut()
	}
	return s.ServerStream.SendMsg(m)
}

// A keyed publish whose connection breaks after the node sequenced it, and
// before its answer, is sent again by the client, to the other node now,
// and is one message: the retry gets the first offset and a subscriber sees
// it once. Both ways of publishing: Client.Publish and a Publisher.
func TestKeyedPublishRetriedOnAnotherNodeIsOneMessage(t *testing.T) {
	for _, how := range []string{"Publish", "Publisher"} {
		t.Run(how, func(t *testing.T) {
			kc := startKeyedCluster(t)
			ctx := testCtx(t)
			sub := subscribe(t, ctx, dial(t, kc.addrs[1]), "a")
			c := dial(t, kc.proxy.Addr(), fastBackoff)
			publish := func(text string, opts ...client.PublishOption) (uint64, error) {
				return c.PublishText(ctx, "a", text, opts...)
			}
			if how == "Publisher" {
				p := newPublisher(t, ctx, c)
				publish = func(text string, opts ...client.PublishOption) (uint64, error) {
					off, _, err := p.PublishText(ctx, "a", text, opts...)
					return off, err
				}
			}
			kc.armed.Store(true)
			off, err := publish("keyed", client.WithIdempotencyKey(client.NewIdempotencyKey()))
			if err != nil || off != 1 {
				t.Fatalf("keyed publish across the cut: offset %d, %v; want 1", off, err)
			}
			if kc.proxy.Accepted() < 2 {
				t.Fatalf("the proxy accepted %d connections: the connection was not cut", kc.proxy.Accepted())
			}
			if off, err := publish("sentinel"); err != nil || off != 2 {
				t.Fatalf("sentinel: offset %d, %v; want 2 (the retry appended nothing)", off, err)
			}
			for _, want := range []string{"keyed", "sentinel"} {
				ev, err := sub.Next(ctx)
				if err != nil {
					t.Fatalf("the subscriber, waiting for %q: %v", want, err)
				}
				if ev.Message == nil || ev.Message.GetText() != want {
					t.Fatalf("the subscriber got %s, want %q", describe(ev), want)
				}
			}
		})
	}
}
