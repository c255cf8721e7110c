package server_test

import (
	"runtime"
	"runtime/metrics"
	"slices"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/server"
)

// Watching a plaintext connection's resets must not cost it a read buffer
// of its own: grpc-go reads a bare TCP connection into pooled buffers only
// when data arrives, and reads a watched one the same way through its
// ReadOnReady method. Idle connections cost the same with the limit as
// without it; a pinned buffer would be 32 KiB more each.
func TestIdleConnectionsPinNoReadBuffer(t *testing.T) {
	const conns = 64
	perConn := func(opts ...server.Option) float64 {
		_, addr := start(t, opts...)
		ctx := testCtx(t)
		before := heapInUse()
		for range conns {
			c := healthpb.NewHealthClient(servertest.Dial(t, addr))
			if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatal(err)
			}
		}
		return float64(heapInUse()-before) / conns
	}
	// Medians of alternate runs: what the rest of the process frees or
	// allocates meanwhile (earlier tests' servers and connections winding
	// down) moves a single measurement by more than the bound.
	var withouts, withs []float64
	for range 3 {
		withouts = append(withouts, perConn(server.WithStreamResetRate(0, 0)))
		withs = append(withs, perConn())
	}
	slices.Sort(withouts)
	slices.Sort(withs)
	without, with := withouts[1], withs[1]
	t.Logf("heap per idle connection, client's and server's: %.0f bytes without the limit, %.0f with it", without, with)
	if with-without > 16<<10 {
		t.Errorf("watching resets costs %.0f bytes more per idle connection: does grpc-go still call ReadOnReady?", with-without)
	}
}

// heapInUse is the bytes of live heap objects, once garbage is collected.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}
