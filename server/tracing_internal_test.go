package server

import (
	"testing"

	"go.opentelemetry.io/otel/trace/noop"
)

// TestStatsHandlerOnlyWithTracing checks what the server gives grpc-go: no
// stats handler at all unless tracing is on, since any handler costs every
// SendMsg a clock read and allocations (doc.go).
func TestStatsHandlerOnlyWithTracing(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
		want int
	}{
		{"default", nil, 0},
		{"nil provider", []Option{WithTracing(nil)}, 0},
		{"tracing", []Option{WithTracing(noop.NewTracerProvider())}, 1},
	} {
		cfg, err := newConfig(tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(cfg.statsHandlers()); got != tc.want {
			t.Errorf("%s: %d stats handlers, want %d", tc.name, got, tc.want)
		}
	}
}
