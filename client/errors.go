package client

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Sentinel errors, for use with errors.Is. Errors that come from the server
// also keep their gRPC status: status.Code(err) and status.FromError(err)
// report the code and message the server sent.
var (
	// ErrClosed is returned by calls on a Client or Subscription after its
	// Close, and by Subscription.Err when Close is what ended the stream.
	ErrClosed = errors.New("roomcast: closed")

	// ErrAlreadyJoined matches the error of a join of a room the subscription
	// is already in (gRPC code AlreadyExists).
	ErrAlreadyJoined = errors.New("roomcast: room already joined")

	// ErrNotJoined matches the error of a leave of a room the subscription is
	// not in (gRPC code NotFound).
	ErrNotJoined = errors.New("roomcast: room not joined")
)

// opError is the error of one operation. Its text is "roomcast: op: cause";
// errors.Is and errors.As see the cause and every error in also; and
// GRPCStatus returns the first gRPC status among them, unchanged, so that
// status.FromError reports the server's own message.
type opError struct {
	op    string  // what failed, such as `join "chat.lobby"`
	cause error   // why, shown in the text
	also  []error // sentinels and statuses the error also matches
}

func (e *opError) Error() string { return "roomcast: " + e.op + ": " + e.cause.Error() }

func (e *opError) Unwrap() []error { return append([]error{e.cause}, e.also...) }

// GRPCStatus makes status.Code and status.FromError see the wrapped status;
// nil when there is none, which status.Code reports as codes.Unknown.
func (e *opError) GRPCStatus() *status.Status {
	for _, err := range e.Unwrap() {
		var gs interface{ GRPCStatus() *status.Status }
		if errors.As(err, &gs) {
			return gs.GRPCStatus()
		}
	}
	return nil
}

// rpcError wraps an error of a gRPC call made with ctx. When ctx is done the
// error also matches ctx's error, so errors.Is(err, context.Canceled) holds
// as well as status.Code(err) == codes.Canceled.
func rpcError(ctx context.Context, op string, err error) error {
	e := &opError{op: op, cause: err}
	if ctxErr := ctx.Err(); ctxErr != nil {
		e.also = append(e.also, ctxErr)
	}
	return e
}

// contextError is the error of an operation abandoned because ctx is done:
// it matches ctx's error and has the matching status code.
func contextError(ctx context.Context, op string) error {
	err := context.Cause(ctx)
	return &opError{op: op, cause: err, also: []error{ctx.Err(), status.FromContextError(ctx.Err()).Err()}}
}

// replyError turns a failed command's reply into an error with the status
// the server gave: status.Error(codes.Code(e.Code), e.Message).
func replyError(op string, e *roomcastv1.Error) error {
	code := codes.Code(e.GetCode())
	err := &opError{op: op, cause: status.Error(code, e.GetMessage())}
	switch code {
	case codes.AlreadyExists:
		err.also = append(err.also, ErrAlreadyJoined)
	case codes.NotFound:
		err.also = append(err.also, ErrNotJoined)
	}
	return err
}
