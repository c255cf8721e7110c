package server_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/rawh2"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// untilMetric polls the metric that value reads until it is want, failing
// the test at ctx's end.
func untilMetric(t testing.TB, ctx context.Context, name string, want float64, value func() float64) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for value() != want {
		select {
		case <-ctx.Done():
			t.Fatalf("%s is %v, never %v", name, value(), want)
		case <-tick.C:
		}
	}
}

// idleConns opens n connections that send the HTTP/2 preface and never
// call, and waits until the server has accepted all of them.
func idleConns(t testing.TB, ctx context.Context, reg *prometheus.Registry, addr string, n int) {
	t.Helper()
	for range n {
		dialRaw(t, addr)
	}
	untilMetric(t, ctx, "roomcast_connections", float64(n), func() float64 { return gaugeValue(t, reg, "roomcast_connections") })
}

// A reconnection storm of clients that each call at once on connecting is
// accepted as fast as its calls authenticate, however slow the pace: here
// idle connections hold the count at the threshold, so that every accept
// of the storm past the first finds more connections awaiting
// authentication than that, and the pace would let in one connection and
// then none for decades.
func TestReconnectStormIsNotHeldByTheAcceptPace(t *testing.T) {
	const after, storm = 20, 200
	reg := prometheus.NewRegistry()
	addr := testjwt.StartServer(t, server.WithAuthTimeout(time.Hour), server.WithAcceptPace(after, 1e-9, 1), server.WithMetrics(reg))
	ctx := testCtx(t)
	idleConns(t, ctx, reg, addr, after)

	tok := testjwt.Token(t, "svc", time.Now().Add(time.Hour), testjwt.Grants(t, "storm.>", "", ""))
	callCtx := metadata.AppendToOutgoingContext(within(t, 20*time.Second), "authorization", "Bearer "+tok)
	errs := make(chan error, storm)
	var wg sync.WaitGroup
	for range storm {
		conn := servertest.Dial(t, addr)
		wg.Go(func() {
			_, err := roomcastv1.NewBrokerServiceClient(conn).Publish(callCtx, &roomcastv1.PublishRequest{Room: "storm.r"})
			errs <- err
			conn.Close() // the race detector's goroutine limit is not far
		})
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			if failed++; failed == 1 {
				t.Errorf("a client of the storm: %v", err)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d clients of the storm failed", failed, storm)
	}
	if n := counter(t, reg, "roomcast_connections_paced_accepts_total"); n == 0 {
		t.Error("no accept of the storm waited: the test did not reach the pace")
	}
}

// Connections that never call are accepted while no more than the
// threshold await authentication, and past it only at the pace: here one
// burst of one and then none, so that the server holds exactly threshold+2
// of them while the rest wait in the kernel's backlog.
func TestAcceptPaceHoldsIdleConnections(t *testing.T) {
	const after, idle = 5, 12
	reg := prometheus.NewRegistry()
	addr := testjwt.StartServer(t, server.WithAuthTimeout(time.Hour), server.WithAcceptPace(after, 1e-9, 1), server.WithMetrics(reg))
	ctx := testCtx(t)
	for range idle {
		dialRaw(t, addr)
	}
	// The accept loop waits for the pace only once it has handed the
	// server every connection before.
	untilMetric(t, ctx, "roomcast_connections_paced_accepts_total", 1, func() float64 { return counter(t, reg, "roomcast_connections_paced_accepts_total") })
	if n := gaugeValue(t, reg, "roomcast_connections"); n != after+2 {
		t.Errorf("the server holds %v connections that never called, want %d (one past the threshold, and the pace's burst)", n, after+2)
	}
}

// Connections that close before their first call leave the count within
// the pace's sweep (100 ms), without a scrape of the metrics, which sweeps
// too: a load balancer's health checks or a port scan, connecting and
// closing, held the pace until their auth timeouts (10 s by default), and
// every client past the threshold waited for the pace meanwhile.
func TestClosedConnectionsStopPacingAccepts(t *testing.T) {
	const after = 3
	reg := prometheus.NewRegistry()
	addr := testjwt.StartServer(t, server.WithAuthTimeout(time.Hour), server.WithAcceptPace(after, 1e-9, 1), server.WithMetrics(reg))
	ctx := testCtx(t)
	var idle []*rawh2.Conn
	for range after + 3 { // the threshold, one past it with the burst's token, and one held
		idle = append(idle, dialRaw(t, addr))
	}
	untilMetric(t, ctx, "roomcast_connections_paced_accepts_total", 1, func() float64 { return counter(t, reg, "roomcast_connections_paced_accepts_total") })
	for _, c := range idle {
		c.Close()
	}
	// No metric is read from here on: the pace alone must notice.
	check, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(servertest.Dial(t, addr)).Check(check, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("a new client once the idle connections closed: %v", err)
	}
}
