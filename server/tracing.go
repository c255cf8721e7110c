package server

import (
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// WithTracing traces every call with OpenTelemetry: each call and stream
// becomes a server span of tp named after its method
// ("roomcast.v1.BrokerService/Publish"), a child of the caller's span when
// its metadata carries W3C trace context, with the call's status code as
// rpc.response.status_code. It installs otelgrpc's stats handler, which
// costs every message sent, a Subscribe stream's batches included, a clock
// read and allocations whether or not the span is sampled (see "Tracing" in
// docs/operations.md for the figures). The default, and what nil means, is
// no tracing and no stats handler at all. The server neither shuts tp down
// nor flushes it: its owner does, after Shutdown.
func WithTracing(tp trace.TracerProvider) Option { return func(c *config) { c.tracer = tp } }

// statsHandlers returns the grpc.StatsHandler options that cfg asks for:
// none unless tracing is on, so that a server without it pays nothing per
// message (see the hot path in doc.go).
func (c *config) statsHandlers() []grpc.ServerOption {
	if c.tracer == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(c.tracer),
		// Explicit, not the global propagator, which is a no-op unless set.
		otelgrpc.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
		// Metrics are Prometheus's (WithMetrics); no OpenTelemetry meters.
		otelgrpc.WithMeterProvider(noop.NewMeterProvider()),
	))}
}
