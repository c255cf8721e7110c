package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// The streams of one connection share a writer; a stream whose client stops
// reading must not hold up the others, and must lose nothing once it reads
// again. The write timeout is far beyond the test's deadline, so only the
// move off the shared writer can let the reading streams through. The
// stopped stream joins between the others, so some are sent before it in a
// round and some after.
func TestAStreamThatStopsReadingDoesNotHoldUpItsConnection(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, addr := start(t,
		server.WithMetrics(reg),
		server.WithWriteTimeout(time.Hour),
		server.WithBrokerOptions(broker.WithBacklog(1024, 16<<20)),
		server.WithMaxMessageBytes(64<<10),
	)
	ctx := testCtx(t)
	c := roomcastv1.NewBrokerServiceClient(smallWindowConn(t, addr))
	pub := dial(t, addr)
	reading := []*subscriber{subscribe(t, ctx, c, "r"), subscribe(t, ctx, c, "r")}
	stopped := subscribe(t, ctx, c, "r")
	reading = append(reading, subscribe(t, ctx, c, "r"))

	const n = 64 // 2 MiB: far more than the window and queue of one stream
	payload := strings.Repeat("x", 32<<10)
	for i := range uint64(n) {
		off := publishText(t, ctx, pub, "r", payload)
		for _, s := range reading {
			if m := s.next(); m.GetOffset() != off || off != i+1 {
				t.Fatalf("reading stream got offset %d, want %d", m.GetOffset(), off)
			}
		}
	}
	if d := counter(t, reg, "roomcast_stream_detaches_total"); d < 1 {
		t.Errorf("roomcast_stream_detaches_total = %v, want at least 1", d)
	}
	// Commands of the other streams are still answered.
	if rep := reading[0].command(&roomcastv1.SubscribeRequest{Id: "j", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: "s"}}}); rep.GetError() != nil {
		t.Fatalf("join: %v", rep.GetError())
	}
	for i := range uint64(n) {
		if m := stopped.next(); m.GetOffset() != i+1 {
			t.Fatalf("stopped stream got offset %d after %d", m.GetOffset(), i)
		}
	}
}

// The same when what the stopped stream does not read is the replies to its
// own commands: the shared writer is then blocked in the middle of handling
// them, not in sending messages.
func TestAStreamThatStopsReadingRepliesDoesNotHoldUpItsConnection(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, addr := start(t, server.WithMetrics(reg), server.WithWriteTimeout(time.Hour), server.WithCommandRate(0, 0))
	ctx := testCtx(t)
	c := roomcastv1.NewBrokerServiceClient(smallWindowConn(t, addr))
	pub := dial(t, addr)
	reading := subscribe(t, ctx, c, "r")
	floodCtx, stop := context.WithCancel(ctx)
	stopped := subscribe(t, floodCtx, c)

	// Commands that fail get replies about as long as their ids: 300 KB of
	// replies, more than the window and queue of one stream. The client
	// blocks sending them once the server stops reading them, until stop.
	var flood sync.WaitGroup
	flood.Add(1)
	go func() {
		defer flood.Done()
		id := strings.Repeat("i", 120)
		for i := 0; i < 2000; i++ {
			if err := stopped.stream.Send(&roomcastv1.SubscribeRequest{Id: fmt.Sprint(id, i), Command: &roomcastv1.SubscribeRequest_Leave{Leave: &roomcastv1.LeaveCommand{Room: "nowhere"}}}); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { stop(); flood.Wait() })

	for i := uint64(1); counter(t, reg, "roomcast_stream_detaches_total") < 1; i++ {
		if off := publishText(t, ctx, pub, "r", "m"); reading.next().GetOffset() != off {
			t.Fatalf("reading stream did not get offset %d", off)
		}
		if i > 10_000 {
			t.Fatal("the stopped stream never blocked the shared writer")
		}
	}
	for range 10 {
		if off := publishText(t, ctx, pub, "r", "m"); reading.next().GetOffset() != off {
			t.Fatalf("reading stream did not get offset %d", off)
		}
	}
}

// smallWindowConn returns a connection with a fixed 64 KiB window per
// stream, so a stream that stops reading fills its flow-control window and
// then grpc-go's queue after a few messages.
func smallWindowConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// counter returns the value of the counter name in reg.
func counter(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return metricValue(t, reg, name, false)
}

// gaugeValue returns the value of the gauge name in reg.
func gaugeValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return metricValue(t, reg, name, true)
}

// metricValue returns the value of the one series of the counter, or the
// gauge, name in reg.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, gauge bool) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			m := f.GetMetric()[0]
			if gauge {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s with one series", name)
	return 0
}
