package server_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomcast/roomcast/internal/rawh2"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

const heldGauge = "roomcast_connections_refused_held"

// waitGauge waits for reg's gauge name to read want, failing the test at
// ctx's end.
func waitGauge(t testing.TB, ctx context.Context, reg *prometheus.Registry, name string, want float64) {
	t.Helper()
	untilMetric(t, ctx, name, want, func() float64 { return gaugeValue(t, reg, name) })
}

// heldConn dials a connection from flooder that the server refuses past
// its address's cap and holds, and waits for the gauge of held
// connections to reach held.
func heldConn(t testing.TB, ctx context.Context, reg *prometheus.Registry, addr string, held float64) *rawh2.Conn {
	t.Helper()
	c := rawFrom(t, flooder, addr)
	if c == nil {
		t.Fatal("a refused connection was reset as it was accepted, not held")
	}
	waitGauge(t, ctx, reg, heldGauge, held)
	return c
}

// wasReset fails the test unless c ended with a reset, the server having
// sent nothing on it: grpc-go never saw it.
func wasReset(t testing.TB, ctx context.Context, c *rawh2.Conn) {
	t.Helper()
	end, err := c.Wait(ctx)
	if err != nil {
		t.Fatalf("a held connection was not closed: %v", err)
	}
	if len(end.Frames) > 0 {
		t.Errorf("the server sent %v on a refused connection: grpc-go served it", end.Frames)
	}
	if !errors.Is(end.Err, syscall.ECONNRESET) {
		t.Errorf("a held connection ended with %v, want a reset", end.Err)
	}
}

// A connection refused past its address's cap stays open, unanswered, for
// the hold, and is then reset.
func TestRefusedConnectionIsHeldThenReset(t *testing.T) {
	const hold = time.Second
	reg := prometheus.NewRegistry()
	addr := testjwt.StartServer(t, server.WithAuthTimeout(time.Hour), server.WithMaxPendingPerAddress(1),
		server.WithRefusedHold(hold, 0), server.WithMetrics(reg))
	ctx := within(t, 10*time.Second)
	if !served(t, ctx, rawFrom(t, flooder, addr)) {
		t.Fatal("the connection within the cap was not served")
	}
	dialled := time.Now()
	c := rawFrom(t, flooder, addr)
	if c == nil {
		t.Fatal("a refused connection was reset as it was accepted, not held")
	}
	// Held, it shows in the gauge until its reset (which a stalled test
	// may miss: the time it took is checked below).
	for gaugeValue(t, reg, heldGauge) != 1 {
		select {
		case <-c.Done():
			t.Logf("%s not seen at 1 before the reset", heldGauge)
		case <-ctx.Done():
			t.Fatalf("%s = %v, want 1", heldGauge, gaugeValue(t, reg, heldGauge))
		case <-time.After(5 * time.Millisecond):
			continue
		}
		break
	}
	wasReset(t, ctx, c)
	// The server accepted it after the dial began, and may reset it up to
	// tarpitSlack (10 ms) early.
	if took := time.Since(dialled); took < hold-10*time.Millisecond {
		t.Errorf("a held connection was reset %v after its dial, before its hold of %v", took, hold)
	}
	if n := gaugeValue(t, reg, heldGauge); n != 0 {
		t.Errorf("%s = %v once the connection was reset, want 0", heldGauge, n)
	}
	if n := counter(t, reg, "roomcast_connections_address_refused_total"); n != 1 {
		t.Errorf("roomcast_connections_address_refused_total = %v, want 1", n)
	}
}

// Past the bound on connections held, a refused connection is reset at
// once; another address is served while one address's are held; and
// stopping the server resets the held ones without waiting out their hold
// (Close at once; Shutdown when its drain starts, or at its end at the
// latest, which is all this test can tell).
func TestRefusedHeldBoundAndStop(t *testing.T) {
	for _, stop := range []struct {
		name string
		stop func(ctx context.Context, srv *server.Server) error
	}{
		{"Close", func(_ context.Context, srv *server.Server) error { return srv.Close() }},
		{"Shutdown", func(ctx context.Context, srv *server.Server) error { return srv.Shutdown(ctx) }},
	} {
		t.Run(stop.name, func(t *testing.T) {
			const most = 2
			reg := prometheus.NewRegistry()
			srv, addr := servertest.Start(t, server.WithAuthenticator(testjwt.Authenticator(t)),
				server.WithAuthTimeout(time.Hour), server.WithMaxPendingPerAddress(1),
				server.WithRefusedHold(time.Hour, most), server.WithMetrics(reg))
			ctx := within(t, 10*time.Second)
			first := rawFrom(t, flooder, addr)
			if !served(t, ctx, first) {
				t.Fatal("the connection within the cap was not served")
			}
			var held []*rawh2.Conn
			for i := range most {
				held = append(held, heldConn(t, ctx, reg, addr, float64(i+1)))
			}
			if past := rawFrom(t, flooder, addr); past != nil {
				wasReset(t, ctx, past)
			}
			if n := counter(t, reg, "roomcast_connections_address_refused_total"); n != most+1 {
				t.Errorf("roomcast_connections_address_refused_total = %v, want %d", n, most+1)
			}
			other := rawFrom(t, bystander, addr)
			if !served(t, ctx, other) {
				t.Fatal("another address's connection was not served while the first's were held")
			}
			for _, c := range held {
				select {
				case <-c.Done():
					t.Fatal("a connection held for an hour was closed")
				default:
				}
			}
			// Nothing but the held ones for a graceful stop to wait for.
			first.Close()
			other.Close()
			stopped := make(chan error, 1)
			go func() { stopped <- stop.stop(ctx, srv) }()
			for _, c := range held {
				wasReset(t, ctx, c)
			}
			if err := <-stopped; err != nil {
				t.Errorf("%s: %v", stop.name, err)
			}
		})
	}
}

// WithRefusedHold's settings are checked.
func TestRefusedHoldSettings(t *testing.T) {
	for _, opt := range []server.Option{server.WithRefusedHold(-time.Second, 0), server.WithRefusedHold(time.Second, -1)} {
		if _, err := server.New(opt); err == nil {
			t.Error("New took a negative refused hold setting")
		}
	}
}
