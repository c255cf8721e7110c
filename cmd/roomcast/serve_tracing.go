package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// tracingFlushTimeout bounds how long serve's shutdown waits for the spans
// still buffered to be exported, after the server has stopped.
const tracingFlushTimeout = 5 * time.Second

// tracingFlags are serve's flags for OpenTelemetry tracing.
type tracingFlags struct {
	exporter string // off, otlp or stdout
}

func (f *tracingFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.exporter, "otel-traces", "off",
		"trace every call with OpenTelemetry and export the spans to `EXPORTER`: otlp (OTLP over gRPC, configured by the standard OTEL_EXPORTER_OTLP_* environment variables), stdout (one JSON object per span on standard output), or off; tracing costs every message sent, so it is off by default")
}

func (f *tracingFlags) validate() error {
	switch f.exporter {
	case "off", "otlp", "stdout":
		return nil
	}
	return fmt.Errorf("--otel-traces must be off, otlp or stdout, got %q", f.exporter)
}

// provider returns the tracer provider the flags ask for, exporting in
// batches, or nil when tracing is off. Its service name is "roomcast"
// unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise; its
// sampler is every span, or what OTEL_TRACES_SAMPLER says. The caller
// shuts it down, which flushes it.
func (f *tracingFlags) provider(ctx context.Context, stdout io.Writer) (*sdktrace.TracerProvider, error) {
	var exp sdktrace.SpanExporter
	var err error
	switch f.exporter {
	case "off":
		return nil, nil
	case "otlp": // connects lazily: an unreachable collector does not stop serve
		exp, err = otlptracegrpc.New(ctx)
	case "stdout":
		exp, err = stdouttrace.New(stdouttrace.WithWriter(stdout))
	}
	if err != nil {
		return nil, fmt.Errorf("trace exporter %s: %w", f.exporter, err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "roomcast")),
		resource.WithFromEnv(), // after, so that it wins
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}
