package client

import (
	"context"
	"errors"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Sentinel errors, for use with errors.Is. Errors that come from the server
// also keep their gRPC status: status.Code(err) and status.FromError(err)
// report the code and message the server sent, so code that switches on
// status.Code goes on working.
var (
	// ErrClosed is returned by calls on a Client or Subscription after its
	// Close, and by Subscription.Err when Close is what ended it.
	ErrClosed = errors.New("roomcast: closed")

	// ErrUnavailable matches codes.Unavailable: the server could not be
	// reached, the connection broke, or the server is shutting down. For a
	// Publish it does not say whether the message was sequenced (see
	// Client.Publish).
	ErrUnavailable = errors.New("roomcast: unavailable")

	// ErrUnauthenticated matches codes.Unauthenticated: no credential, an
	// invalid one, or one that expired. It ends a Subscription for good.
	ErrUnauthenticated = errors.New("roomcast: unauthenticated")

	// ErrPermissionDenied matches codes.PermissionDenied: the credential's
	// grants do not cover the room. It ends a Subscription for good when a
	// room it was in is refused on a reconnect.
	ErrPermissionDenied = errors.New("roomcast: permission denied")

	// ErrInvalidArgument matches codes.InvalidArgument: a bad room name,
	// header, content type or session id.
	ErrInvalidArgument = errors.New("roomcast: invalid argument")

	// ErrRateLimited matches a codes.ResourceExhausted error that carries a
	// RetryInfo detail: the credential's publish rate was exceeded. The
	// message was not sequenced; RetryAfter says how long to wait.
	ErrRateLimited = errors.New("roomcast: rate limited")

	// ErrTooLarge matches the codes.ResourceExhausted error of a Publish
	// without a RetryInfo detail: the message is over the server's size
	// limit (the status message gives the limit). It was not sequenced.
	ErrTooLarge = errors.New("roomcast: message too large")

	// ErrAlreadyJoined matches the error of a join of a room the
	// subscription is already in (gRPC code AlreadyExists).
	ErrAlreadyJoined = errors.New("roomcast: room already joined")

	// ErrNotJoined matches the error of a leave of a room the subscription
	// is not in (gRPC code NotFound).
	ErrNotJoined = errors.New("roomcast: room not joined")
)

// RetryAfter returns the delay the server asked for before a retry, from
// the RetryInfo detail of err's gRPC status (errors matching ErrRateLimited
// carry one), and whether there was one.
func RetryAfter(err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok || st == nil {
		return 0, false
	}
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok && r.GetRetryDelay() != nil {
			return max(r.GetRetryDelay().AsDuration(), 0), true
		}
	}
	return 0, false
}

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

// errKind says which sentinels a code maps to where codes mean different
// things.
type errKind int

const (
	kindCall    errKind = iota // an RPC or a stream
	kindPublish                // a Publish: RESOURCE_EXHAUSTED is a rate or the size
	kindCommand                // a command on a stream: ALREADY_EXISTS, NOT_FOUND
)

// sentinels returns the sentinel errors err's status code matches.
func sentinels(err error, kind errKind) []error {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	switch st.Code() {
	case codes.Unavailable:
		return []error{ErrUnavailable}
	case codes.Unauthenticated:
		return []error{ErrUnauthenticated}
	case codes.PermissionDenied:
		return []error{ErrPermissionDenied}
	case codes.InvalidArgument:
		return []error{ErrInvalidArgument}
	case codes.ResourceExhausted:
		if _, ok := RetryAfter(err); ok {
			return []error{ErrRateLimited}
		}
		if kind == kindPublish {
			return []error{ErrTooLarge}
		}
	case codes.AlreadyExists:
		if kind == kindCommand {
			return []error{ErrAlreadyJoined}
		}
	case codes.NotFound:
		if kind == kindCommand {
			return []error{ErrNotJoined}
		}
	}
	return nil
}

// permanent reports whether a subscription must not reconnect after err:
// reconnecting would fail the same way until someone changes the
// credential, the grants or the request.
func permanent(err error) bool {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument:
		return true
	}
	return false
}

// rpcError wraps an error of a gRPC call made with ctx. When ctx is done the
// error also matches ctx's error, so errors.Is(err, context.Canceled) holds
// as well as status.Code(err) == codes.Canceled.
func rpcError(ctx context.Context, op string, err error, kind errKind) error {
	e := &opError{op: op, cause: err, also: sentinels(err, kind)}
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
	err := status.Error(codes.Code(e.GetCode()), e.GetMessage())
	return &opError{op: op, cause: err, also: sentinels(err, kindCommand)}
}

// localError is an error the client finds without asking the server, with
// the status the server would give.
func localError(op string, code codes.Code, msg string, kind errKind) error {
	err := status.Error(code, msg)
	return &opError{op: op, cause: err, also: sentinels(err, kind)}
}
