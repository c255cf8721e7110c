package server_test

import (
	"strings"
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
// move off the shared writer can let the reading stream through.
func TestAStreamThatStopsReadingDoesNotHoldUpItsConnection(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, addr := start(t,
		server.WithMetrics(reg),
		server.WithWriteTimeout(time.Hour),
		server.WithBrokerOptions(broker.WithBacklog(1024, 16<<20)),
		server.WithMaxMessageBytes(64<<10),
	)
	ctx := testCtx(t)
	// A fixed 64 KiB window, so the stopped stream fills its flow-control
	// window and then grpc-go's queue after a few messages.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := roomcastv1.NewBrokerServiceClient(conn)
	pub := dial(t, addr)
	stopped := subscribe(t, ctx, c, "r")
	reading := subscribe(t, ctx, c, "r")

	const n = 64 // 2 MiB: far more than the window and queue of one stream
	payload := strings.Repeat("x", 32<<10)
	for i := range uint64(n) {
		off := publishText(t, ctx, pub, "r", payload)
		if m := reading.next(); m.GetOffset() != off || off != i+1 {
			t.Fatalf("reading stream got offset %d, want %d", m.GetOffset(), off)
		}
	}
	if d := counter(t, reg, "roomcast_stream_detaches_total"); d < 1 {
		t.Errorf("roomcast_stream_detaches_total = %v, want at least 1", d)
	}
	for i := range uint64(n) {
		if m := stopped.next(); m.GetOffset() != i+1 {
			t.Fatalf("stopped stream got offset %d after %d", m.GetOffset(), i)
		}
	}
}

// counter returns the value of the counter name in reg.
func counter(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}
