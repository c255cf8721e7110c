package server

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Some refusals happen where no interceptor sees them, so neither the
// gRPC metrics (grpc_server_handled_total), nor the access log, nor the
// refusal log of unaryCalls: the tap's, before a call's request is read, and
// the codec's, before a request is decoded (a generated unary handler
// decodes before it calls the interceptors). Each is counted here, by
// method and reason, and logged with the client's address through the
// failure log's limiter.

// Reasons of early refusals: the values of the reason label.
const (
	reasonTooLarge        = "too_large"              // over its RPC's request size limit
	reasonTooManyEntries  = "too_many_entries"       // over a map's entry or a batch's item limit
	reasonMalformed       = "malformed"              // not a decodable request (invalid UTF-8 among them)
	reasonUnauthenticated = "unauthenticated"        // a missing or bad credential, in the tap
	reasonStreamLimit     = "stream_limit"           // the credential has its Subscribe or PublishStream streams open
	reasonPublishBytes    = "publish_bytes_owed"     // the credential owes bytes of its publish byte rate
	reasonReadBytes       = "read_bytes_owed"        // the credential owes bytes of its read byte rate
	reasonLargeWaiting    = "large_requests_waiting" // too many large requests wait for turns (largeturns.go)
)

// otherMethod is the method label of a call to a method the server does not
// serve: the tap sees any path a client sends, and a label must not take
// any value it likes.
const otherMethod = "other"

// knownMethods are the methods whose names are method labels as they are.
var knownMethods = func() map[string]bool {
	m := make(map[string]bool)
	for _, d := range []*grpc.ServiceDesc{&roomcastv1.BrokerService_ServiceDesc, &roomcastv1.AdminService_ServiceDesc} {
		for _, md := range d.Methods {
			m["/"+d.ServiceName+"/"+md.MethodName] = true
		}
		for _, sd := range d.Streams {
			m["/"+d.ServiceName+"/"+sd.StreamName] = true
		}
	}
	return m
}()

// methodLabel is the method label of fullMethod: itself if the server
// serves it, otherMethod if not.
func methodLabel(fullMethod string) string {
	if knownMethods[fullMethod] {
		return fullMethod
	}
	return otherMethod
}

// newRefusalCounts returns the counter of early refusals.
func newRefusalCounts() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "roomcast_requests_refused_total",
		Help: "Calls refused by the tap, before their request was read and before any interceptor ran (reason unauthenticated, stream_limit, publish_bytes_owed, publish_rate, read_rate), and requests refused before they were decoded (too_large, too_many_entries, malformed): a unary call's before any interceptor ran, so not in grpc_server_handled_total; a stream's message, whose stream then ends. method is other for a method the server does not serve.",
	}, []string{"method", "reason"})
}

// early counts a refusal of a call to fullMethod (or of one of its stream's
// messages) made before the interceptors, and logs it with the client's
// address unless the log's rate is spent. It is safe for concurrent use.
func (l *failureLog) early(ctx context.Context, fullMethod, reason string, err error) {
	method := l.count(fullMethod, reason)
	suppressed, ok := l.line()
	if !ok {
		return
	}
	attrs := []any{"peer", peerAddr(ctx), "rpc", method, "reason", reason, "err", status.Convert(err).Message()}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	l.log.Warn("request refused", attrs...)
}

// count counts an early refusal of a call to fullMethod for reason, and
// returns the method label it was counted under.
func (l *failureLog) count(fullMethod, reason string) string {
	method := methodLabel(fullMethod)
	l.counts.WithLabelValues(method, reason).Inc()
	return method
}

// decodeRefusal is the reason of a request refused on its way to being
// decoded with err (by the codec's checks, or by grpc-go: over its receive
// limit, or undecodable), or "" if err is no refusal (the client went away).
func decodeRefusal(err error) string {
	if errors.Is(err, errLargeWaiting) {
		return reasonLargeWaiting
	}
	switch status.Code(err) {
	case codes.ResourceExhausted:
		return reasonTooLarge
	case codes.InvalidArgument: // only the codec's checks say it
		return reasonTooManyEntries
	case codes.Internal:
		return reasonMalformed
	}
	return ""
}

// refusedRequest counts and logs a request of a call to fullMethod that was
// refused before it was decoded, with err, if err is such a refusal.
func (s *Server) refusedRequest(ctx context.Context, fullMethod string, err error) {
	if reason := decodeRefusal(err); reason != "" {
		s.access.log.early(ctx, fullMethod, reason, err)
	}
}
