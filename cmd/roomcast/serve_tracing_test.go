package main

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// With --otel-traces stdout, serve writes each call's span to standard
// output, flushing what it buffered when it shuts down.
func TestServeTracesToStdout(t *testing.T) {
	ctx := testCtx(t)
	serveCtx, stop := context.WithCancel(ctx)
	defer stop()
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	exited := make(chan int, 1)
	go func() {
		exited <- run(serveCtx, []string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", "", "--otel-traces", "stdout"}, stdout, stderr)
	}()
	addr := stderr.waitFor(t, ctx, grpcAddr)[1]
	if _, err := publish(ctx, dialPlaintext(t, addr), "chat.lobby", "hello"); err != nil {
		t.Fatal(err)
	}
	stop()
	if code := <-exited; code != exitOK {
		t.Fatalf("serve exited with %d; stderr:\n%s", code, stderr)
	}
	out := stdout.String()
	for _, want := range []string{`"Name":"roomcast.v1.BrokerService/Publish"`, `"Value":"roomcast"`, `"Value":"OK"`} {
		if !strings.Contains(out, want) {
			t.Errorf("standard output lacks %s:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr.String(), "exporter=stdout") {
		t.Errorf("serve did not log that it traces:\n%s", stderr)
	}
}

func TestServeRefusesUnknownTraceExporter(t *testing.T) {
	code, _, stderr := runCmd(testCtx(t), "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "", "--otel-traces", "jaeger")
	if code != exitUsage || !strings.Contains(stderr, "--otel-traces must be off, otlp or stdout") {
		t.Errorf("exit %d, stderr %q; want a usage error about --otel-traces", code, stderr)
	}
}

// collector is an OTLP trace collector that hands the names of the spans it
// receives to a channel.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	spans chan string
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans <- s.GetName()
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// With --otel-traces otlp, serve exports its spans to the collector that the
// standard OTEL_EXPORTER_OTLP_* variables name, flushing them on shutdown.
func TestServeTracesToOTLPCollector(t *testing.T) {
	col := &collector{spans: make(chan string, 64)}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, col)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+lis.Addr().String())

	ctx := testCtx(t)
	serveCtx, stop := context.WithCancel(ctx)
	defer stop()
	stderr := newSyncBuffer()
	exited := make(chan int, 1)
	go func() {
		exited <- run(serveCtx, []string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", "", "--otel-traces", "otlp"}, io.Discard, stderr)
	}()
	addr := stderr.waitFor(t, ctx, grpcAddr)[1]
	if _, err := publish(ctx, dialPlaintext(t, addr), "chat.lobby", "hello"); err != nil {
		t.Fatal(err)
	}
	stop() // the batch is not due for seconds: only the flush on shutdown sends it now
	if code := <-exited; code != exitOK {
		t.Fatalf("serve exited with %d; stderr:\n%s", code, stderr)
	}
	select {
	case name := <-col.spans:
		if name != "roomcast.v1.BrokerService/Publish" {
			t.Errorf("collector received span %q, want roomcast.v1.BrokerService/Publish", name)
		}
	default:
		t.Fatalf("the collector received no span before serve exited; stderr:\n%s", stderr)
	}
}
