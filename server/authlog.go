package server

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// failureLog logs refused credentials and permissions, with the client's
// address, so that an operator sees who is knocking; at most a number of
// lines a second, so that a flood of bad calls cannot flood the log. A line
// says how many were left out before it ("suppressed"). It also counts,
// and logs through the same limit, the requests refused before any
// interceptor saw them (see refusals.go). It is safe for concurrent use.
type failureLog struct {
	log        *slog.Logger
	lines      *rate.Limiter          // nil: log none
	suppressed atomic.Uint64          // lines left out since the last one logged
	counts     *prometheus.CounterVec // early refusals, by method and reason (see refusals.go)
}

func newFailureLog(cfg *config) *failureLog {
	l := &failureLog{log: cfg.log, counts: newRefusalCounts()}
	if cfg.authLogRate > 0 {
		l.lines = rate.NewLimiter(rate.Limit(cfg.authLogRate), max(1, int(cfg.authLogRate)))
	}
	return l
}

// refused logs that a call or command of the client at peerAddr was refused
// with err, when err is UNAUTHENTICATED or PERMISSION_DENIED; attrs say
// which call or command, and by whom when known.
func (l *failureLog) refused(err error, peerAddr string, attrs ...any) {
	st, _ := status.FromError(err)
	var msg string
	switch st.Code() {
	case codes.Unauthenticated:
		msg = "authentication failed"
	case codes.PermissionDenied:
		msg = "permission denied"
	default:
		return // see refusedByAccess
	}
	suppressed, ok := l.line()
	if !ok {
		return
	}
	attrs = append([]any{"peer", peerAddr}, attrs...)
	attrs = append(attrs, "err", st.Message())
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	l.log.Warn(msg, attrs...)
}

// line reports whether a line may be logged now, and how many were left
// out before it; a line it refuses is counted as left out.
func (l *failureLog) line() (suppressed uint64, ok bool) {
	if l.lines == nil {
		return 0, false
	}
	if !l.lines.Allow() {
		l.suppressed.Add(1)
		return 0, false
	}
	return l.suppressed.Swap(0), true
}

// peerAddr is the client's address, "" when unknown.
func peerAddr(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	var buf [64]byte // an address's text, built without growing: one allocation, the string
	return string(appendAddr(buf[:0], p.Addr))
}
