package server

import (
	"context"
	"strings"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// go-grpc-middleware's Prometheus interceptor looks up each of a unary
// call's four counters (started, received, sent, handled) by its label
// values, hashing them and taking each vector's lock, and makes a reporter
// and reads the clock four times for a handling-time histogram that is off:
// 5 to 6% of the server's CPU per unary Publish, two allocations. Its
// options have nothing that keeps the counters, but what it registers are
// client_golang's counter vectors, and their children for every method
// exist once ServerMetrics.InitializeMetrics has run: collecting them
// hands out the counters themselves. So a unary Publish, the one call
// made thousands of times a second, counts straight into the library's
// own counters for its labels (publishCounters), which the library
// registered, named and exposes as before; every other call goes through
// the library's interceptor. The counts are the library's, call for call
// (TestPublishCountsAsTheLibrary).

// publishCounters are the children of a ServerMetrics' counters for the
// unary Publish: what its interceptor would look up for each call.
type publishCounters struct {
	started, received, sent prometheus.Counter
	handled                 [codes.Unauthenticated + 1]prometheus.Counter // by the call's code, every gRPC code
}

// count runs handler for a unary Publish, counting it as the library's
// interceptor would: started and received before, sent if it succeeded,
// and handled under its code after (grpcprom.FromError's, which takes a
// context's error as grpc-go does). A code past gRPC's 17, which no
// handler of the server returns, is counted as UNKNOWN.
func (c *publishCounters) count(ctx context.Context, req any, handler grpc.UnaryHandler) (any, error) {
	c.started.Inc()
	c.received.Inc()
	resp, err := handler(ctx, req)
	if err == nil {
		c.sent.Inc()
	}
	code := codes.OK
	if err != nil {
		code = grpcprom.FromError(err).Code()
	}
	if int(code) >= len(c.handled) {
		code = codes.Unknown
	}
	c.handled[code].Inc()
	return resp, err
}

// metricsUnary returns m's unary interceptor, counting a unary Publish
// with the counters of m that resolvePublishCounters finds, or, if it
// finds them not all, the library's interceptor for every call.
func metricsUnary(m *grpcprom.ServerMetrics) grpc.UnaryServerInterceptor {
	counted := m.UnaryServerInterceptor()
	pc := resolvePublishCounters(m)
	if pc == nil {
		return counted
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if info.FullMethod == roomcastv1.BrokerService_Publish_FullMethodName {
			return pc.count(ctx, req, handler)
		}
		return counted(ctx, req, info, handler)
	}
}

// publishMethodInfo is the service information of the unary Publish alone, for
// ServerMetrics.InitializeMetrics.
type publishMethodInfo struct{}

func (publishMethodInfo) GetServiceInfo() map[string]grpc.ServiceInfo {
	return map[string]grpc.ServiceInfo{
		roomcastv1.BrokerService_ServiceDesc.ServiceName: {Methods: []grpc.MethodInfo{{Name: "Publish"}}},
	}
}

// resolvePublishCounters returns m's counters of the unary Publish, which
// it has m make (InitializeMetrics, which the server runs for every method
// later anyway), then finds among what m collects by their names and
// labels; nil if it does not find each exactly once.
func resolvePublishCounters(m *grpcprom.ServerMetrics) *publishCounters {
	m.InitializeMetrics(publishMethodInfo{})
	names := map[*prometheus.Desc]string{}
	descs := make(chan *prometheus.Desc)
	go func() { // ends when Describe has sent every one
		defer close(descs)
		m.Describe(descs)
	}()
	for d := range descs {
		names[d] = descName(d)
	}
	metrics := make(chan prometheus.Metric)
	go func() { // ends when Collect has sent every one
		defer close(metrics)
		m.Collect(metrics)
	}()
	var pc publishCounters
	found, ok := 0, true
	for metric := range metrics { // drained to the end, so the goroutine returns
		c, isCounter := metric.(prometheus.Counter)
		labels, isPublish := publishLabels(metric)
		if !isCounter || !isPublish {
			continue
		}
		var slot *prometheus.Counter
		switch names[metric.Desc()] {
		case "grpc_server_started_total":
			slot = &pc.started
		case "grpc_server_msg_received_total":
			slot = &pc.received
		case "grpc_server_msg_sent_total":
			slot = &pc.sent
		case "grpc_server_handled_total":
			code, known := codeNamed(labels["grpc_code"])
			if !known {
				continue
			}
			slot = &pc.handled[code]
		default:
			continue
		}
		if *slot != nil {
			ok = false // twice: not what the library is known to make
		}
		*slot = c
		found++
	}
	if !ok || found != 3+len(pc.handled) {
		return nil
	}
	return &pc
}

// publishLabels returns the variable labels of metric, and whether they
// are the unary Publish's.
func publishLabels(metric prometheus.Metric) (map[string]string, bool) {
	var pb dto.Metric
	if err := metric.Write(&pb); err != nil {
		return nil, false
	}
	labels := make(map[string]string, len(pb.GetLabel()))
	for _, lp := range pb.GetLabel() {
		labels[lp.GetName()] = lp.GetValue()
	}
	return labels, labels["grpc_type"] == "unary" &&
		labels["grpc_service"] == roomcastv1.BrokerService_ServiceDesc.ServiceName && labels["grpc_method"] == "Publish"
}

// descName is the fully qualified name d describes, which client_golang
// gives only in d's String ("Desc{fqName: \"name\", ...}"); "" if it is not
// there.
func descName(d *prometheus.Desc) string {
	_, rest, ok := strings.Cut(d.String(), `fqName: "`)
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, `"`)
	return name
}

// codeNamed returns the gRPC code whose String is name.
func codeNamed(name string) (codes.Code, bool) {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if c.String() == name {
			return c, true
		}
	}
	return 0, false
}
