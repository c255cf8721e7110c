package main

import (
	"context"
	"strings"
	"testing"
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
