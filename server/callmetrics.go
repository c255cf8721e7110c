package server

import (
	"context"
	"strings"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// callMetrics counts calls and their messages as go-grpc-middleware's
// Prometheus server metrics do, under the same names, labels and help (see
// docs/operations.md), which dashboards rely on. Its interceptors look the
// counters of a call's method up once, in a map made when the server
// starts, where go-grpc-middleware's look up a counter by its labels for
// every call and every message (hashing them under a lock): in a CPU
// profile of BenchmarkPublishServe, that was about a fifth of the time a
// unary Publish spent in the server's interceptors.
//
// Its methods are safe for concurrent use once init has run.
type callMetrics struct {
	started, handled, received, sent *prometheus.CounterVec
	methods                          map[string]*methodCounters // by full method name; read-only after init
}

// methodCounters are one method's counters.
type methodCounters struct {
	started, received, sent prometheus.Counter
	handled                 [maxCode + 1]prometheus.Counter // by code
}

// maxCode is the largest gRPC status code.
const maxCode = codes.Unauthenticated

func newCallMetrics() *callMetrics {
	labels := []string{"grpc_type", "grpc_service", "grpc_method"}
	return &callMetrics{
		started:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grpc_server_started_total", Help: "Total number of RPCs started on the server."}, labels),
		handled:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grpc_server_handled_total", Help: "Total number of RPCs completed on the server, regardless of success or failure."}, append(labels, "grpc_code")),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grpc_server_msg_received_total", Help: "Total number of RPC stream messages received on the server."}, labels),
		sent:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grpc_server_msg_sent_total", Help: "Total number of gRPC stream messages sent by the server."}, labels),
	}
}

// Describe implements prometheus.Collector.
func (m *callMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, v := range []*prometheus.CounterVec{m.started, m.handled, m.received, m.sent} {
		v.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *callMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, v := range []*prometheus.CounterVec{m.started, m.handled, m.received, m.sent} {
		v.Collect(ch)
	}
}

// init makes the counters of every method srv serves, at zero, as
// go-grpc-middleware's InitializeMetrics does. It must run before srv
// serves.
func (m *callMetrics) init(srv *grpc.Server) {
	m.methods = make(map[string]*methodCounters)
	for service, info := range srv.GetServiceInfo() {
		for _, method := range info.Methods {
			typ := interceptors.Unary
			switch {
			case method.IsClientStream && method.IsServerStream:
				typ = interceptors.BidiStream
			case method.IsClientStream:
				typ = interceptors.ClientStream
			case method.IsServerStream:
				typ = interceptors.ServerStream
			}
			m.methods["/"+service+"/"+method.Name] = m.counters(typ, service, method.Name)
		}
	}
}

// counters returns the counters of a method.
func (m *callMetrics) counters(typ interceptors.GRPCType, service, method string) *methodCounters {
	c := &methodCounters{
		started:  m.started.WithLabelValues(string(typ), service, method),
		received: m.received.WithLabelValues(string(typ), service, method),
		sent:     m.sent.WithLabelValues(string(typ), service, method),
	}
	for code := range c.handled {
		c.handled[code] = m.handled.WithLabelValues(string(typ), service, method, codes.Code(code).String())
	}
	return c
}

// of returns the counters of fullMethod, of type typ: those init made, or
// for a method it did not know, new ones.
func (m *callMetrics) of(fullMethod string, typ interceptors.GRPCType) *methodCounters {
	if c := m.methods[fullMethod]; c != nil {
		return c
	}
	service, method, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if !ok {
		service, method = "unknown", "unknown"
	}
	return m.counters(typ, service, method)
}

// done counts a call's end with err.
func (c *methodCounters) done(err error) {
	code := status.Code(err)
	if code > maxCode {
		code = codes.Unknown // a code past gRPC's own: no counter of its own
	}
	c.handled[code].Inc()
}

// unary counts a unary call: started, its request received, its response
// sent if it had one, and handled with its code.
func (m *callMetrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	c := m.of(info.FullMethod, interceptors.Unary)
	c.started.Inc()
	c.received.Inc()
	resp, err := handler(ctx, req)
	if err == nil {
		c.sent.Inc()
	}
	c.done(err)
	return resp, err
}

// stream counts a stream: started, each message received and sent, and
// handled with its code.
func (m *callMetrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	c := m.of(info.FullMethod, streamType(info))
	c.started.Inc()
	err := handler(srv, &countedStream{ServerStream: ss, c: c})
	c.done(err)
	return err
}

// countedStream counts the messages of a stream.
type countedStream struct {
	grpc.ServerStream
	c *methodCounters
}

func (s *countedStream) SendMsg(m any) error {
	err := s.ServerStream.SendMsg(m)
	if err == nil {
		s.c.sent.Inc()
	}
	return err
}

func (s *countedStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.c.received.Inc()
	}
	return err
}
