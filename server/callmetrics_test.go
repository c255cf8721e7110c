package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// The server's grpc_server_* metrics are go-grpc-middleware's, which
// dashboards were built on: the same names, help, labels and counts. Its
// interceptors run here beside the server's, on calls of every kind, and
// every series they count must be the server's too; the server's others,
// made at zero when it starts, must be zero.
func TestCallMetricsMatchGoGRPCMiddleware(t *testing.T) {
	ours, theirs := prometheus.NewRegistry(), prometheus.NewRegistry()
	ref := grpcprom.NewServerMetrics()
	theirs.MustRegister(ref)
	_, addr := start(t, server.WithMetrics(ours), server.WithGRPCOptions(
		grpc.ChainUnaryInterceptor(ref.UnaryServerInterceptor()), grpc.ChainStreamInterceptor(ref.StreamServerInterceptor())))
	ctx := testCtx(t)
	c := dial(t, addr)
	subCtx, cancel := context.WithCancel(ctx)
	sub := subscribe(t, subCtx, c, "r")
	publishText(t, ctx, c, "r", "one")
	publishText(t, ctx, c, "r", "two")
	sub.next()
	sub.next()
	if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: ""}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a publish without a room: %v", err)
	}
	if _, err := c.History(ctx, &roomcastv1.HistoryRequest{Room: "r"}); err != nil {
		t.Fatal(err)
	}
	cancel() // the stream ends with CANCELLED

	// Both count a stream's end, and its messages, as the handler returns,
	// after the client has seen them: poll until they agree.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		diffs := metricDiffs(series(t, theirs), series(t, ours))
		if len(diffs) == 0 {
			break
		}
		select {
		case <-tick.C:
			continue
		case <-ctx.Done():
		}
		for _, d := range diffs {
			t.Error(d)
		}
		return
	}
	for _, m := range []string{"grpc_server_started_total", "grpc_server_handled_total", "grpc_server_msg_received_total", "grpc_server_msg_sent_total"} {
		if help(t, ours, m) != help(t, theirs, m) {
			t.Errorf("%s: help %q, want %q", m, help(t, ours, m), help(t, theirs, m))
		}
	}
}

// metricDiffs says where got, the server's series, differ from want,
// go-grpc-middleware's.
func metricDiffs(want, got map[string]float64) []string {
	var diffs []string
	if len(want) == 0 {
		diffs = append(diffs, "go-grpc-middleware counted nothing")
	}
	for k, v := range want {
		if got[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", k, got[k], v))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok && v != 0 {
			diffs = append(diffs, fmt.Sprintf("%s = %v, counted only by the server", k, v))
		}
	}
	return diffs
}

// series are the values of reg's grpc_server_* counters, by name and
// labels.
func series(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	s := make(map[string]float64)
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "grpc_server_") {
			continue
		}
		if f.GetType() != dto.MetricType_COUNTER {
			t.Errorf("%s is a %v", f.GetName(), f.GetType())
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			s[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetCounter().GetValue()
		}
	}
	return s
}

// help is the help of reg's metric name.
func help(t *testing.T, reg *prometheus.Registry, name string) string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetHelp()
		}
	}
	return ""
}
