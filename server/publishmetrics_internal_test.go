package server

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// series returns every grpc_server_* sample reg gathers, by name and labels.
func series(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "grpc_server_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			sort.Strings(labels)
			out[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetCounter().GetValue()
		}
	}
	return out
}

// A unary Publish counted with its resolved counters counts what the
// library's interceptor counts, call for call, whatever it returns; other
// methods go through the library's interceptor.
func TestPublishCountsAsTheLibrary(t *testing.T) {
	lib, ours := grpcprom.NewServerMetrics(), grpcprom.NewServerMetrics()
	libReg, ourReg := prometheus.NewRegistry(), prometheus.NewRegistry()
	libReg.MustRegister(lib)
	ourReg.MustRegister(ours)
	if resolvePublishCounters(ours) == nil {
		t.Fatal("the unary Publish's counters were not found: every Publish would go through the library's lookups")
	}
	libCount, ourCount := lib.UnaryServerInterceptor(), metricsUnary(ours)
	lib.InitializeMetrics(publishMethodInfo{}) // as resolvePublishCounters did to ours
	results := []error{
		nil, nil, nil,
		status.Error(codes.InvalidArgument, "bad"),
		status.Error(codes.ResourceExhausted, "later"),
		status.Error(codes.Unauthenticated, "who"),
		context.Canceled, context.DeadlineExceeded,
		errors.New("not a status"),
		fmt.Errorf("wrapped: %w", status.Error(codes.PermissionDenied, "no")),
	}
	for _, method := range []string{roomcastv1.BrokerService_Publish_FullMethodName, roomcastv1.BrokerService_History_FullMethodName} {
		info := &grpc.UnaryServerInfo{FullMethod: method}
		for _, want := range results {
			handler := func(context.Context, any) (any, error) {
				if want != nil {
					return nil, want
				}
				return "ok", nil
			}
			for _, count := range []grpc.UnaryServerInterceptor{libCount, ourCount} {
				if resp, err := count(context.Background(), "req", info, handler); err != want || (err == nil) != (resp == "ok") {
					t.Fatalf("%s: the interceptor returned %v, %v; want the handler's %v", method, resp, err, want)
				}
			}
		}
	}
	want, got := series(t, libReg), series(t, ourReg)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v as the library counts", k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s = %v, which the library does not have", k, v)
		}
	}
	if v := got[`grpc_server_handled_total{grpc_code=OK,grpc_method=Publish,grpc_service=roomcast.v1.BrokerService,grpc_type=unary}`]; v != 3 {
		t.Errorf("Publish handled OK %v times, want 3", v)
	}
}

// A unary Publish allocates no more with the metrics on than with them
// off: its counters are not looked up, nor a reporter made for it (two
// allocations per call through the library's interceptor).
func TestPublishMetricsAllocateNothing(t *testing.T) {
	s := quietServer(t)
	allocs := func(metrics grpc.UnaryServerInterceptor) float64 {
		ctx, dec := loopbackPublish()
		chain := s.unaryChain(metrics, nil, true) // as New makes it
		h := methodHandler(t, serviceDesc(), "Publish")
		return testing.AllocsPerRun(200, func() {
			if _, err := h(s, ctx, dec, chain); err != nil {
				t.Fatal(err)
			}
		})
	}
	off, on := allocs(nil), allocs(metricsUnary(grpcprom.NewServerMetrics()))
	if on > off {
		t.Errorf("%v allocations per Publish with the metrics on, %v with them off", on, off)
	}
	if lib := allocs(grpcprom.NewServerMetrics().UnaryServerInterceptor()); lib <= on {
		t.Errorf("%v allocations per Publish through the library's interceptor, %v with its counters resolved: want more", lib, on)
	}
}
