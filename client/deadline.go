package client

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A unary Publish does not send its deadline to the server. grpc-go sends a
// call's deadline as the grpc-timeout header, whose value changes with
// every call, and the server then decodes it afresh and arms two timers, a
// context's and one that ends the stream: eight allocations and about 6% of
// the server's CPU per publish (BenchmarkPublishServe). The call ends at
// the deadline all the same: the client cancels it then, which resets its
// stream, and the server's context for the call ends when the reset
// arrives, about when its own timer, started on the headers' arrival, would
// have fired. The server bounds what a publish waits for (a Redis engine's
// calls) by its own timeouts, and a connection that is lost by keepalive.

// callWithoutDeadline returns a context for a call on behalf of ctx that
// carries ctx's values but not its deadline, and is canceled when ctx ends;
// end releases it and must be called once the call has returned. A ctx
// without a deadline is returned as it is.
func callWithoutDeadline(ctx context.Context) (call context.Context, end func()) {
	if _, ok := ctx.Deadline(); !ok {
		return ctx, func() {}
	}
	call, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	return call, func() { stop(); cancel() }
}

// callError is err, the error of a call made with callWithoutDeadline's
// context for ctx, as the call made with ctx would have failed: when ctx
// has ended, with ctx's status (DeadlineExceeded when its deadline passed)
// rather than the Canceled of the call's own context.
func callError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && status.Code(err) == codes.Canceled {
		return status.FromContextError(ctxErr).Err()
	}
	return err
}
