package client

import (
	"context"
	"time"
)

// A unary Publish does not send its deadline to the server. grpc-go sends a
// call's deadline as the grpc-timeout header, whose value changes with
// every call, and the server then decodes it afresh and arms two timers, a
// context's and one that ends the stream: eight allocations and about 5%
// of the server's CPU per publish (BenchmarkPublishServe with
// $ROOMCAST_BENCH_NO_DEADLINE). The call ends at the deadline all the same:
// its context is done then, so grpc-go cancels it with DeadlineExceeded and
// resets its stream, and the server's context for the call ends when the
// reset arrives, about when its own timer, started on the headers' arrival,
// would have fired. The server bounds what a publish waits for (a Redis
// engine's calls) by its own timeouts.

// withoutDeadline is a call's context that is ctx in every way but its
// deadline, which it does not report: it is done, with ctx's error, when
// ctx is.
type withoutDeadline struct{ context.Context }

// Deadline reports no deadline.
func (withoutDeadline) Deadline() (time.Time, bool) { return time.Time{}, false }

// callContext returns ctx for a call that should not send its deadline.
func callContext(ctx context.Context) context.Context {
	if _, ok := ctx.Deadline(); !ok {
		return ctx
	}
	return withoutDeadline{ctx}
}
